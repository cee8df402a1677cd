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
