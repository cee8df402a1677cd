// The Model Configuration tab: one card per interaction type with its global entry (see entry-card.js).

import { $ } from "./dom.js";
import { buildEntryCard } from "./entry-card.js";
import { state } from "./state.js";

/** The card of `type`'s global entry (`entry`, or undefined when there is none). */
export function buildCard(type, entry) {
  return buildEntryCard(type, entry, {
    path: `/config/${encodeURIComponent(type.name)}`,
    slug: `cfg-${type.name}`,
    label: type.name,
    onChange: (next) => {
      if (next) state.config[type.name] = next;
      else delete state.config[type.name];
    },
  });
}

export function renderCards() {
  const cards = $("#cards");
  cards.replaceChildren();
  $("#config-empty").hidden = state.providers.length > 0;
  for (const type of state.types) cards.append(buildCard(type, state.config[type.name]));
}
