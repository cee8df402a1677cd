// The history drawer of one entry (global, or a group's): each version with what changed, and Restore.

import { api } from "./api.js";
import { $, busy, el, toast, when } from "./dom.js";

const HISTORY_FIELDS = [
  "provider_name",
  "model_name",
  "temperature",
  "max_tokens",
  "extra_params",
  "fallbacks",
  "weight",
  "variants",
];

function fieldText(value) {
  if (value === null || value === undefined) return "default";
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

function changesOf(version, previous) {
  const changed = HISTORY_FIELDS.filter(
    (f) => !previous || fieldText(previous.entry[f]) !== fieldText(version.entry[f]),
  );
  return el(
    "ul",
    { class: "diff" },
    changed.map((f) =>
      el(
        "li",
        {},
        `${f}: `,
        previous ? el("del", { text: fieldText(previous.entry[f]) }) : "",
        previous ? " → " : "",
        el("ins", { text: fieldText(version.entry[f]) }),
      ),
    ),
  );
}

/**
 * Opens the drawer of the entry at `path` (titled `History of <label>`), loading its history with a loading
 * state on `button`. After a restore, `onRestored(entry)` gets the new current entry.
 */
export async function showHistory(button, { path, label }, onRestored) {
  const dialog = $("#history");
  $("#history-title").textContent = `History of ${label}`;
  $(".error", dialog).textContent = "";
  let versions;
  try {
    versions = await busy(button, "Loading…", () => api("GET", `${path}/history`));
  } catch (e) {
    toast(e.message, "bad");
    return;
  }
  const restore = async (event, version) => {
    try {
      const body = { version: version.version };
      const entry = await busy(event.currentTarget, "Restoring…", () => api("POST", `${path}/rollback`, body));
      dialog.close();
      onRestored(entry);
      toast(`Restored version ${version.version} of ${label} as version ${entry.version}`);
    } catch (err) {
      $(".error", dialog).textContent = err.message;
    }
  };
  const list = $("#history-list");
  list.replaceChildren();
  if (!versions.length) list.append(el("li", { class: "muted", text: `${label} has not been configured yet.` }));
  versions.forEach((version, index) => {
    const current = index === 0;
    const action = el("button", {
      type: "button",
      class: "small",
      text: current ? "Current" : "Restore",
      disabled: current,
      "aria-label": current ? `Version ${version.version} is current` : `Restore version ${version.version}`,
      onclick: (event) => restore(event, version),
    });
    const said = `${version.action.split(".")[1]} by ${version.actor}, ${when(version.at)}`;
    list.append(
      el(
        "li",
        {},
        el(
          "div",
          { class: "actions" },
          el("strong", { text: `Version ${version.version}` }),
          el("span", { class: "muted", text: said }),
          action,
        ),
        changesOf(version, versions[index + 1]),
      ),
    );
  });
  dialog.showModal();
}
