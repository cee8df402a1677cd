// Small DOM helpers shared by every tab. Nothing here sets inline styles or inline handlers: the server's
// Content Security Policy forbids both, so looks come from classes in css/*.css and handlers from addEventListener.

export const $ = (selector, root = document) => root.querySelector(selector);

/**
 * Opens or closes the form `#<form>` that the button `#<form>-toggle` shows: the button then says "Close", or
 * `label` again once the form is closed; an opened form's name field takes the focus.
 */
export function toggleForm(form, label, open) {
  const shown = $(`#${form}`);
  shown.hidden = !open;
  const toggle = $(`#${form}-toggle`);
  toggle.setAttribute("aria-expanded", String(open));
  toggle.textContent = open ? "Close" : label;
  if (open) shown.elements.name.focus();
}

/**
 * Builds an element: `class` and `text` set className and textContent, `on<event>` adds a listener, `true`
 * makes an empty attribute, and null, undefined or false leave the attribute out.
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "style") throw new Error("Inline styles are blocked by the Content Security Policy; use a class");
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

/** A small button of a table row; `label`, its accessible name, names the row too ("Edit budget type:tools"). */
export function smallButton(text, label, onclick, kind = "") {
  return el("button", { type: "button", class: kind ? `small ${kind}` : "small", text, "aria-label": label, onclick });
}

/** The last cell of a table row: its buttons side by side. */
export function actionsCell(...buttons) {
  return el("td", {}, el("div", { class: "actions" }, ...buttons));
}

/** Runs `action` with a loading state on `button` (disabled, aria-busy, `label`), restoring it afterwards. */
export async function busy(button, label, action) {
  const original = button.textContent;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  button.textContent = label;
  try {
    return await action();
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
    button.textContent = original;
  }
}

let toastTimer;

/** Shows `message` in the live region for six seconds; `kind` "bad" marks a failure. */
export function toast(message, kind = "ok") {
  const box = $("#toast");
  box.replaceChildren(el("div", { class: kind, text: message }));
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => box.replaceChildren(), 6000);
}

/** A timestamp from the API in the browser's locale, or "" for none. */
export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}
