"""Figure 9: ``get_llm`` with groups, variants and budgets configured, and what the budget check costs a call.

The database is the one figure 1 uses (provider ``bench``, ``reasoning`` on ``model-a``), with more on top: a
group ``team-a`` of 100 users whose entry for ``reasoning`` splits traffic 50/50 between two variants, and four
budgets that all apply to a member's call (the user's, the group's, the type's and the provider's), none
spent. No call reaches a provider: the figures are what the library does before one would.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.common import Row, fmt_seconds, median, settings_for, time_each
from bench.library import direct_construction

MEMBERS = 100


def _configure(svc: Any) -> str:
    from llmconfig.config import ConfigUpdate, GroupMembershipUpdate
    from llmconfig.config.schemas import VariantUpdate
    from llmconfig.usage.budgets import BudgetUpdate

    provider_id: str = svc.providers.get("bench").id
    svc.config.set_group_entry(
        "team-a",
        "reasoning",
        ConfigUpdate(
            provider_id=provider_id,
            model_name="model-a",
            weight=50,
            variants=[VariantUpdate(name="b", provider_id=provider_id, model_name="model-b", weight=50)],
        ),
        actor="bench",
    )
    for n in range(MEMBERS):
        svc.groups.set_membership(f"u-{n}", GroupMembershipUpdate(groups=["team-a"]), actor="bench")
    for scope in ("user:u-1", "group:team-a", "type:reasoning", f"provider:{provider_id}"):
        svc.budgets.set(scope, BudgetUpdate(period="day", limit_usd=1000.0), actor="bench")
    return provider_id


def _model_name(model: Any) -> str:
    """The model a (possibly budget-gated) chat model calls first."""
    name: str = model.models[0].model_name if hasattr(model, "models") else model.model_name
    return name


def teams_figures(database_url: str, master_key: str, workdir: Path, *, label: str) -> list[Row]:
    """Warm ``get_llm(type, user_id=…)`` of a group member ÷ direct construction; the budget check's median."""
    from llmconfig import LLMConfigService

    svc = LLMConfigService(settings_for(database_url, master_key, workdir))
    try:
        _configure(svc)
        users = [f"u-{n}" for n in range(MEMBERS)]
        for user in users:
            svc.get_llm("reasoning", user_id=user)
        direct = median(direct_construction())
        block = 100
        per_call: list[float] = []
        deadline = time.monotonic() + 2.5
        get_llm = svc.get_llm
        while time.monotonic() < deadline:
            started = time.perf_counter()
            for user in users:
                get_llm("reasoning", user_id=user)
            per_call.append((time.perf_counter() - started) / block)
        warm = median(per_call)

        model = svc.get_llm("reasoning", user_id="u-1")
        gate = model.gate
        assert gate is not None, "the budgets did not reach the model"
        checks = time_each(gate.route, 5000)
        variants = {_model_name(svc.get_llm("reasoning", user_id=user)) for user in users}
    finally:
        svc.close()

    ratio = warm / direct
    warm_row = Row(
        f"9. warm `get_llm` of a group member with variants and budgets ÷ direct construction ({label})",
        f"{ratio:.4f} ({fmt_seconds(warm)} vs {fmt_seconds(direct)})",
        "≤ 0.05",
        ratio <= 0.05,
    )
    warm_row.details.append(
        f"{MEMBERS} users of group team-a, whose entry splits reasoning 50/50 between two variants (the users "
        f"got {len(variants)} distinct models); four budgets apply to each call; median of {len(per_call)} "
        "rounds over every user"
    )
    check = median(checks)
    check_row = Row(
        f"9. the budget check before a call, four budgets in force ({label})",
        f"{check * 1e3:.5f} ms",
        "≤ 0.05 ms",
        check <= 0.05e-3,
    )
    check_row.details.append(
        f"median of {len(checks)} checks by the model's budget gate (the work a call does before it leaves: "
        "one dictionary lookup per budget in the spend the meter keeps, read in the background)"
    )
    return [warm_row, check_row]
