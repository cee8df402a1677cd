// Controls that choose among the known providers, used by the cards and by the user overrides.

import { el } from "./dom.js";
import { state } from "./state.js";

/** Fills `select` with the providers, `selectedId` selected; the first option asks for a choice. */
export function providerOptions(select, selectedId) {
  select.replaceChildren(
    el("option", { value: "", text: state.providers.length ? "Choose a provider" : "No providers yet" }),
  );
  for (const provider of state.providers) {
    select.append(
      el("option", {
        value: provider.id,
        text: `${provider.name} (${provider.provider_type})`,
        selected: provider.id === selectedId,
      }),
    );
  }
}

/**
 * A provider picker and a model field for the row `label` ("Fallback 2"), named `<kind>_provider` and
 * `<kind>_model` so that the form's reader finds them; `choice` fills them in.
 */
export function providerAndModel(label, kind, choice = {}) {
  const provider = el("select", { "aria-label": `${label} provider`, name: `${kind}_provider` });
  providerOptions(provider, choice.provider_id);
  const model = el("input", {
    "aria-label": `${label} model`,
    name: `${kind}_model`,
    value: choice.model_name || "",
    placeholder: "model",
    autocomplete: "off",
  });
  return [provider, model];
}
