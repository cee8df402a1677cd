"""Who may do what over HTTP: the authorization policy of the API, in one place.

Every operation declares one access level through the dependency aliases of ``api/deps.py``
(``ReaderDep``, ``AdminDep``, ``ClientDep``); this module says which roles each level admits and what a
refused caller is told. The OpenAPI document lists the admitted roles on each operation (the security
requirement's role list).

=========  ================  ===========================================================================
level      roles             operations
=========  ================  ===========================================================================
read       admin, viewer     GET of configuration, providers and their catalogs, interaction types,
                             users' effective configuration, audit, usage and prices (never a key)
admin      admin             every change; tokens (create, list, revoke); every call to a provider
                             (``POST /providers/{id}/validate``, ``GET /providers/{id}/models?refresh=true``)
client     admin, client     what agents need: resolve, the OpenAI-compatible ``/v1`` endpoints, usage
                             events, the change stream. Resolution carries provider keys, so viewers may not
=========  ================  ===========================================================================

A client token may further be limited to some interaction types (:func:`require_type`).
"""

from __future__ import annotations

from enum import StrEnum

from fastapi import HTTPException

from llmconfig.tokens import Caller, Role


class Access(StrEnum):
    READ = "read"
    ADMIN = "admin"
    CLIENT = "client"


# The roles each level admits, in the order a refusal names them.
POLICY: dict[Access, tuple[Role, ...]] = {
    Access.READ: ("viewer", "admin"),
    Access.ADMIN: ("admin",),
    Access.CLIENT: ("client", "admin"),
}

# What a role may do, for the second half of a refusal.
SCOPE_OF_ROLE: dict[Role, str] = {
    "admin": "may do everything",
    "viewer": "may only read the configuration, providers, audit and usage",
    "client": (
        "may only resolve interaction types, call the OpenAI-compatible endpoints, post usage events and watch changes"
    ),
}


def allows(caller: Caller, access: Access) -> bool:
    return caller.role in POLICY[access]


def refusal(caller: Caller, access: Access, *, action: str | None = None) -> str | None:
    """Why ``caller`` may not do an operation of ``access`` (naming the roles that may), or None if it may."""
    if allows(caller, access):
        return None
    roles = POLICY[access]
    article = "an" if roles[0][0] in "aeiou" else "a"
    needs = f"this needs {article} {' or '.join(roles)} token"
    lead = f"{action}: {needs}" if action else needs[0].upper() + needs[1:]
    return f"{lead}; {caller.role} tokens {SCOPE_OF_ROLE[caller.role]}"


def require(caller: Caller, access: Access, *, action: str | None = None) -> Caller:
    """``caller`` when the policy admits it for ``access``; 403 naming the role needed otherwise."""
    reason = refusal(caller, access, action=action)
    if reason is not None:
        raise HTTPException(403, reason)
    return caller


def require_type(caller: Caller, interaction_type: str) -> Caller:
    """``caller`` when its token covers ``interaction_type``; 403 naming the types it covers otherwise."""
    if not caller.may_use(interaction_type):
        covered = ", ".join(caller.interaction_types or ())
        raise HTTPException(403, f"This token may use only the interaction types {covered}, not {interaction_type!r}")
    return caller
