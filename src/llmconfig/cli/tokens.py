"""``llmconfig tokens …``: create, list and revoke API tokens."""

from __future__ import annotations

from typing import Annotated

import typer

from llmconfig.cli.common import JsonFlag, RoleChoice, actor, emit_json, out, service, table

__all__ = ["app"]

app = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)


@app.command("create")
def tokens_create(
    role: Annotated[
        RoleChoice,
        typer.Option("--role", help="admin (everything), viewer (reads only) or client (what agent processes need)"),
    ],
    name: Annotated[str | None, typer.Option("--name", help="A label to recognise the token by")] = None,
    types: Annotated[
        str | None,
        typer.Option("--types", help="Client tokens only: the interaction types it may use, comma-separated"),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create an API token. It is printed once and stored only as a hash."""
    limit = [part.strip() for part in types.split(",") if part.strip()] if types is not None else None
    with service() as svc:
        token, info = svc.tokens.create(
            role=role.value, name=name or f"{role.value}-token", interaction_types=limit, actor=actor()
        )
    if as_json:
        emit_json({"token": token, "info": info})
    else:
        out.print(f"{token}\n\nStore it now: it is not shown again. Revoke with `llmconfig tokens revoke {info.id}`.")


@app.command("list")
def tokens_list(as_json: JsonFlag = False) -> None:
    """List API tokens (never the tokens themselves)."""
    with service() as svc:
        infos = svc.tokens.list()
    if as_json:
        emit_json(infos)
        return
    table(
        "API tokens",
        ["id", "name", "role", "types", "starts with", "last used", "revoked"],
        [
            (
                t.id,
                t.name,
                t.role,
                ",".join(t.interaction_types or []) or "all",
                t.token_prefix,
                t.last_used_at,
                t.revoked_at,
            )
            for t in infos
        ],
    )


@app.command("revoke")
def tokens_revoke(
    token: Annotated[str, typer.Argument(help="Token id, name or prefix")], as_json: JsonFlag = False
) -> None:
    """Revoke an API token; requests with it get 401 from then on."""
    with service() as svc:
        info = svc.tokens.revoke(token, actor=actor())
    emit_json(info) if as_json else out.print(f"Revoked token {info.name} ({info.id})")
