// The one confirmation dialog of the panel (delete a provider, revoke a token): it names what is about to
// happen, runs the action with a loading state, and keeps the dialog open with the API's message on failure.

import { $, busy } from "./dom.js";

/**
 * Asks `title` / `text` with the confirm button labelled `confirm`; on confirm runs `action()` while the
 * button reads `busyLabel`. Resolves to true once the action succeeded (the dialog is closed then), to false
 * when the user cancelled (button, Escape).
 */
export function confirmAction({ title, text, confirm, busyLabel, action }) {
  const dialog = $("#confirm");
  const ok = $("#confirm-ok");
  const error = $(".error", dialog);
  $("#confirm-title").textContent = title;
  $("#confirm-text").textContent = text;
  ok.textContent = confirm;
  error.textContent = "";
  return new Promise((resolve) => {
    let succeeded = false;
    const onClick = async (event) => {
      event.preventDefault(); // the form would close the dialog before the action ran
      try {
        await busy(ok, busyLabel, action);
        succeeded = true;
        dialog.close();
      } catch (e) {
        error.textContent = e.message;
      }
    };
    ok.addEventListener("click", onClick);
    dialog.addEventListener(
      "close",
      () => {
        ok.removeEventListener("click", onClick);
        resolve(succeeded);
      },
      { once: true },
    );
    dialog.showModal();
  });
}
