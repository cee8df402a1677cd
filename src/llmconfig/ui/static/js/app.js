// The llmconfig settings panel: the entry module. Sign-in, the tabs, and the wiring of every tab's module.
// Plain ES modules talking to the REST API with the signed-in token; no build step.

import { forgetAccess, setUpAccess, showAccess } from "./access-tab.js";
import { api, token, whenTokenRejected } from "./api.js";
import { setUpBudgets, showBudgets } from "./budgets-tab.js";
import { renderCards } from "./config-tab.js";
import { $, busy, toast } from "./dom.js";
import { setUpGroups, showGroups } from "./groups-tab.js";
import { renderProviders, setUpProviders } from "./providers-tab.js";
import { loadAll } from "./state.js";
import { setUpUsage, showUsage } from "./usage-tab.js";
import { setUpUsers } from "./users-tab.js";

const TABS = ["config", "providers", "groups", "users", "usage", "budgets", "access"];

async function signIn(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const value = $("#token").value.trim();
  const error = $("#signin-error");
  error.textContent = "";
  if (!value) {
    error.textContent = "Enter a token.";
    return;
  }
  token.set(value);
  try {
    await busy($("button[type=submit]", form), "Signing in…", () => api("GET", "/interaction-types"));
  } catch (e) {
    token.clear();
    error.textContent = e.status === 401 ? "That token was not accepted. Check it and try again." : e.message;
    return;
  }
  $("#token").value = "";
  await showApp();
  $('[role="tab"][aria-selected="true"]').focus(); // the sign-in form is gone: keep keyboard users in place
}

function signOut(message) {
  token.clear();
  forgetAccess();
  $("#app").hidden = true;
  $("#sign-out").hidden = true;
  $("#signin").hidden = false;
  $("#signin-error").textContent = message || "";
  $("#token").focus();
}

async function showApp() {
  $("#signin").hidden = true;
  $("#app").hidden = false;
  $("#sign-out").hidden = false;
  $("#cards").setAttribute("aria-busy", "true");
  try {
    await loadAll();
    renderProviders();
    renderCards();
  } catch (e) {
    toast(e.message, "bad");
  } finally {
    $("#cards").removeAttribute("aria-busy");
  }
  const wanted = location.hash.slice(1);
  selectTab(TABS.includes(wanted) ? wanted : "config", false);
}

function selectTab(name, focus = true) {
  for (const tab of TABS) {
    const button = $(`#tab-${tab}`);
    const selected = tab === name;
    button.setAttribute("aria-selected", String(selected));
    button.tabIndex = selected ? 0 : -1;
    $(`#panel-${tab}`).hidden = !selected;
    if (selected && focus) button.focus();
  }
  history.replaceState(null, "", name === "config" ? "#" : `#${name}`);
  if (name === "groups") showGroups();
  if (name === "usage") showUsage();
  if (name === "budgets") showBudgets();
  if (name === "access") showAccess();
}

// Arrow keys, Home and End move along the tab list (the WAI-ARIA tabs pattern).
function tabKeys(event) {
  const index = TABS.indexOf(event.target.id.replace("tab-", ""));
  if (index < 0) return;
  const moves = { ArrowRight: 1, ArrowLeft: -1, Home: -index, End: TABS.length - 1 - index };
  if (!(event.key in moves)) return;
  event.preventDefault();
  selectTab(TABS[(index + moves[event.key] + TABS.length) % TABS.length]);
}

function start() {
  whenTokenRejected(signOut);
  $("#signin-form").addEventListener("submit", signIn);
  $("#sign-out").addEventListener("click", () => signOut("Signed out."));
  for (const tab of TABS) $(`#tab-${tab}`).addEventListener("click", () => selectTab(tab));
  $(".tabs").addEventListener("keydown", tabKeys);
  setUpProviders();
  setUpUsers();
  setUpGroups();
  setUpUsage();
  setUpBudgets();
  setUpAccess();
  $("#history [data-close]").addEventListener("click", () => $("#history").close());
  for (const link of document.querySelectorAll("[data-goto]")) {
    link.addEventListener("click", (e) => {
      e.preventDefault();
      selectTab(link.dataset.goto);
    });
  }
  if (token.get()) showApp();
  else signOut();
}

// Module scripts run after the document is parsed, so the DOM is ready here.
start();
