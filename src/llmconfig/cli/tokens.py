"""``llmconfig tokens …``: create, list and revoke API tokens."""

from __future__ import annotations

from typing import Annotated

import typer

from llmconfig.cli.common import JsonFlag, RoleChoice, actor, emit_json, out, service, table

__all__ = ["app"]

app = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)


@app.command("create")
def tokens_create(
    role: Annotated[RoleChoice, typer.Option("--role", help="admin (everything) or viewer (reads only)")],
    name: Annotated[str | None, typer.Option("--name", help="A label to recognise the token by")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create an API token. It is printed once and stored only as a hash."""
    from llmconfig.tokens import TokenService

    with service() as svc:
        token, info = TokenService(sessions=svc.sessions).create(
            role=role.value, name=name or f"{role.value}-token", actor=actor()
        )
    if as_json:
        emit_json({"token": token, "info": info})
    else:
        out.print(f"{token}\n\nStore it now: it is not shown again. Revoke with `llmconfig tokens revoke {info.id}`.")


@app.command("list")
def tokens_list(as_json: JsonFlag = False) -> None:
    """List API tokens (never the tokens themselves)."""
    from llmconfig.tokens import TokenService

    with service() as svc:
        infos = TokenService(sessions=svc.sessions).list()
    if as_json:
        emit_json(infos)
        return
    table(
        "API tokens",
        ["id", "name", "role", "starts with", "last used", "revoked"],
        [(t.id, t.name, t.role, t.token_prefix, t.last_used_at, t.revoked_at) for t in infos],
    )


@app.command("revoke")
def tokens_revoke(
    token: Annotated[str, typer.Argument(help="Token id, name or prefix")], as_json: JsonFlag = False
) -> None:
    """Revoke an API token; requests with it get 401 from then on."""
    from llmconfig.tokens import TokenService

    with service() as svc:
        info = TokenService(sessions=svc.sessions).revoke(token, actor=actor())
    emit_json(info) if as_json else out.print(f"Revoked token {info.name} ({info.id})")
