// What the panel knows about the server, shared by the tabs: providers, interaction types, the global
// configuration and each provider's catalog. Loaded at sign-in and refreshed after the changes that affect it.

import { api } from "./api.js";

export const state = { providers: [], types: [], config: {}, catalogs: new Map() };

/** Loads everything the tabs show; rejects with the first ApiError. */
export async function loadAll() {
  const [providers, types, config] = await Promise.all([
    api("GET", "/providers"),
    api("GET", "/interaction-types"),
    api("GET", "/config"),
  ]);
  state.providers = providers;
  state.types = types;
  state.config = config;
  state.catalogs.clear();
  await Promise.all(providers.map(loadCatalog));
}

/** The stored catalog of one provider; a provider whose catalog cannot be read offers no models. */
export async function loadCatalog(provider) {
  try {
    state.catalogs.set(provider.id, await api("GET", `/providers/${provider.id}/models`));
  } catch {
    state.catalogs.set(provider.id, []);
  }
}

export async function reloadProviders() {
  state.providers = await api("GET", "/providers");
}
