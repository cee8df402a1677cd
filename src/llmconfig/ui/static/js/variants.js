// The variants of an entry, inside its card: the main model's weight and each variant's name, provider, model
// and weight, with the share of the traffic each gets (its weight over the sum of all weights).

import { $, el } from "./dom.js";
import { providerAndModel } from "./pickers.js";

// The form edits a variant's name, provider, model and weight; its other parameters (null = the entry's own)
// are kept as stored, so that saving a card never drops what was set through the API.
const KEPT_PARAMS = ["temperature", "max_tokens", "extra_params", "fallbacks"];
const stored = new WeakMap(); // row → the variant it was loaded from

const isWeight = (value) => /^\d+$/.test(value) && Number(value) >= 1;

/** The share `weight` of `total` as a percentage ("33.3%"), or "—" while the weight is not a valid one. */
export function shareText(weight, total) {
  if (!isWeight(String(weight)) || !total) return "—";
  return `${Math.round((Number(weight) / total) * 1000) / 10}%`;
}

/** Shows each variant's share of the traffic, from the weights as typed. */
function updateShares(box) {
  const weights = [...box.querySelectorAll("input[name=weight], input[name=variant_weight]")];
  const total = weights.filter((w) => isWeight(w.value)).reduce((n, w) => n + Number(w.value), 0);
  for (const input of weights) input.parentElement.querySelector(".share").textContent = shareText(input.value, total);
}

function variantRow(box, variant = {}) {
  const list = $("ol", box);
  const n = list.children.length + 1;
  const name = el("input", {
    "aria-label": `Variant ${n} name`,
    name: "variant_name",
    value: variant.name || "",
    placeholder: "name",
    autocomplete: "off",
  });
  const [provider, model] = providerAndModel(`Variant ${n}`, "variant", variant);
  const weight = el("input", {
    type: "number",
    min: "1",
    step: "1",
    inputmode: "numeric",
    "aria-label": `Variant ${n} weight`,
    name: "variant_weight",
    value: variant.weight ?? "",
    placeholder: "weight",
  });
  const share = el("span", { class: "share", title: `Share of the traffic of variant ${n}` });
  const row = el("li", {}, name, provider, model, weight, share);
  row.append(
    el("button", {
      type: "button",
      class: "ghost small",
      "aria-label": `Remove variant ${n}`,
      text: "Remove",
      onclick: () => {
        row.remove();
        updateShares(box);
      },
    }),
  );
  if (variant.name) stored.set(row, variant);
  list.append(row);
  return row;
}

/** Fills the card's Variants fieldset from `entry` (undefined for a new entry) and keeps the shares current. */
export function setUpVariants(form, slug, entry) {
  const box = $(".variants", form);
  const main = $("input[name=weight]", box);
  main.id = `${slug}-weight`;
  $(".variant-main label", box).htmlFor = main.id;
  $(".variant-main .share", box).title = "Share of the traffic of the main model";
  main.value = entry?.weight ?? 100;
  for (const variant of entry?.variants || []) variantRow(box, variant);
  $("[data-add-variant]", box).addEventListener("click", () => {
    $("input", variantRow(box)).focus();
    updateShares(box);
  });
  box.addEventListener("input", () => updateShares(box));
  updateShares(box);
}

// A number as typed, or the text itself when it is not one: the server's 422 then names the variant.
const asNumber = (value) => (value.trim() === "" ? null : Number.isNaN(Number(value)) ? value : Number(value));

/**
 * The weight of the main model and the variants as typed, for the body of a PUT; rows left blank are skipped.
 * `rows` lists the rows sent, in order, so that a 422 naming `variants.<i>` can be shown on its row.
 */
export function readVariants(form) {
  const box = $(".variants", form);
  const rows = [...box.querySelectorAll("ol > li")].filter(
    (li) => $("[name=variant_name]", li).value.trim() || $("[name=variant_model]", li).value.trim(),
  );
  const variants = rows.map((li) => {
    const kept = stored.get(li) || {};
    const variant = Object.fromEntries(KEPT_PARAMS.filter((p) => kept[p] != null).map((p) => [p, kept[p]]));
    return {
      ...variant,
      name: $("[name=variant_name]", li).value.trim(),
      provider_id: $("[name=variant_provider]", li).value,
      model_name: $("[name=variant_model]", li).value.trim(),
      weight: asNumber($("[name=variant_weight]", li).value),
    };
  });
  return { weight: asNumber($("input[name=weight]", box).value) ?? 100, variants, rows };
}

/** Marks the variant rows (or the main weight) that the server's rejected `fields` name; clears the others. */
export function markRejected(form, rows, fields) {
  const box = $(".variants", form);
  for (const node of box.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
  for (const field of fields) {
    if (field === "weight") $("input[name=weight]", box).setAttribute("aria-invalid", "true");
    const index = /^variants\.(\d+)/.exec(field)?.[1];
    if (index !== undefined && rows[Number(index)]) rows[Number(index)].setAttribute("aria-invalid", "true");
  }
}
