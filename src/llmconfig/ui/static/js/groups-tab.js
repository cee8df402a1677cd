// The Groups tab: every group with its members and the interaction types it has entries for; a group's
// entries edited in the same cards as the global ones; Delete (refused while a budget names the group).

import { api } from "./api.js";
import { confirmAction } from "./confirm.js";
import { $, actionsCell, busy, el, smallButton, toast } from "./dom.js";
import { buildEntryCard } from "./entry-card.js";
import { state } from "./state.js";

let shown = null; // the group whose entries are open below the list
let known = []; // the names of the groups last listed

/** Loads the groups and lists them; rejects with the ApiError of the request. */
async function loadGroups() {
  const groups = await api("GET", "/groups");
  known = groups.map((g) => g.name);
  renderGroups(groups);
  return groups;
}

function renderGroups(groups) {
  const table = $("#groups-table");
  $("#groups-empty").hidden = groups.length > 0;
  table.hidden = groups.length === 0;
  $("tbody", table).replaceChildren(...groups.map(groupRow));
}

function groupRow(group) {
  const types = group.interaction_types.length
    ? el(
        "span",
        { class: "chips" },
        group.interaction_types.map((t) => el("span", { class: "badge group", text: t })),
      )
    : el("span", { class: "muted", text: "no entries" });
  return el(
    "tr",
    {},
    el("th", { scope: "row", text: group.name }),
    el("td", { text: group.members.length ? group.members.join(", ") : "no members" }),
    el("td", {}, types),
    actionsCell(
      smallButton("Edit", `Edit ${group.name}`, (e) => openGroup(group.name, e.currentTarget)),
      smallButton("Delete", `Delete ${group.name}`, () => deleteGroup(group), "danger"),
    ),
  );
}

/** Shows the cards of `name`'s entries, one per interaction type; a new group gets empty cards. */
async function openGroup(name, button) {
  let entries = {}; // a group that does not exist yet: its first saved entry makes it one
  try {
    await busy(button, "Loading…", async () => {
      await loadGroups();
      // Asking for a group that does not exist would be a 404 (and an error in the browser's console).
      const path = `/groups/${encodeURIComponent(name)}/config`;
      if (known.includes(name)) entries = await api("GET", path);
    });
  } catch (e) {
    $("#group-error").textContent = e.message;
    return;
  }
  $("#group-error").textContent = "";
  shown = name;
  const detail = $("#group-detail");
  $("#group-detail-title").textContent = `Entries of ${name}`;
  const cards = state.types.map((type) =>
    buildEntryCard(type, entries[type.name], {
      path: `/groups/${encodeURIComponent(name)}/config/${encodeURIComponent(type.name)}`,
      slug: `grp-${name}-${type.name}`,
      label: `${type.name} for ${name}`,
      removable: true,
      onChange: () => loadGroups().catch((e) => toast(e.message, "bad")),
    }),
  );
  $(".cards", detail).replaceChildren(...cards);
  detail.hidden = false;
  $("#group-detail-title").focus();
}

async function deleteGroup(group) {
  const entries = group.interaction_types.length;
  const members = group.members.length;
  const deleted = await confirmAction({
    title: "Delete group?",
    text:
      `Delete ${group.name} with its ${entries} ${entries === 1 ? "entry" : "entries"}? Its ${members} ` +
      `${members === 1 ? "member follows" : "members follow"} their other groups or the global configuration.`,
    confirm: "Delete",
    busyLabel: "Deleting…",
    action: () => api("DELETE", `/groups/${encodeURIComponent(group.name)}`),
  });
  if (!deleted) return;
  toast(`Deleted group ${group.name}`);
  if (shown === group.name) {
    shown = null;
    $("#group-detail").hidden = true;
  }
  await loadGroups().catch((e) => toast(e.message, "bad"));
}

/** Lists the groups; called when the tab is shown. */
export async function showGroups() {
  try {
    await loadGroups();
  } catch (e) {
    toast(e.message, "bad");
  }
}

/** Wires the tab's form (open a group by name, a new one included); called once at start. */
export function setUpGroups() {
  $("#group-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = $("#group-name").value.trim();
    if (!name) {
      $("#group-error").textContent = "Enter a group name.";
      return;
    }
    openGroup(name, $("button[type=submit]", event.currentTarget));
  });
}
