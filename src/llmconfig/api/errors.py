"""Every error leaves the API as ``application/problem+json`` (RFC 9457) with a ``detail`` a person can act on.

Domain exceptions map to status codes here and nowhere else. Validation errors are reported by field and
message only: pydantic's echo of the rejected input is dropped, since that input may be an API key.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from llmconfig.errors import (
    ConfigUnavailableError,
    ConflictError,
    LLMConfigError,
    NotConfiguredError,
    NotFoundError,
    ProviderError,
    SecretBackendError,
    ValidationError,
)
from llmconfig.providers.schemas import ValidationResult
from llmconfig.validation import REQUEST_PARTS, describe, input_problems

PROBLEM_JSON = "application/problem+json"

STATUS_BY_ERROR: list[tuple[type[LLMConfigError], int]] = [
    (NotFoundError, 404),
    (ConflictError, 409),
    (ValidationError, 422),
    # The provider the input names failed its check: the caller's to fix, not the server's (a 5xx would page
    # whoever watches this server's error rate). The body carries the check's outcome.
    (ProviderError, 422),
    (ConfigUnavailableError, 503),
    (SecretBackendError, 503),
]


class FieldProblem(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[FieldProblem] | None = None


class ProviderProblem(Problem):
    """A provider failed its check: ``validation`` is what ``POST /providers/{id}/validate`` would answer."""

    validation: ValidationResult


def problem(
    status: int,
    detail: str,
    *,
    errors: list[FieldProblem] | None = None,
    headers: Any = None,
    kind: str = "about:blank",
) -> JSONResponse:
    body = Problem(type=kind, title=HTTPStatus(status).phrase, status=status, detail=detail, errors=errors)
    return JSONResponse(
        body.model_dump(exclude_none=True), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


def provider_problem(exc: ProviderError) -> JSONResponse:
    """422 with the failed check, shaped like a validation result, as the body's ``validation``."""
    result = ValidationResult(ok=False, status=exc.status, detail=str(exc), latency_ms=exc.latency_ms)
    body = ProviderProblem(title=HTTPStatus(422).phrase, status=422, detail=str(exc), validation=result)
    # Every field of the result, as the validate endpoint sends it (latency_ms may be null).
    content = {**body.model_dump(exclude_none=True), "validation": result.model_dump(mode="json")}
    return JSONResponse(content, status_code=422, media_type=PROBLEM_JSON)


def _problem_response(description: str, model: type[Problem] = Problem) -> dict[str, Any]:
    return {"description": description, "model": model, "content": {PROBLEM_JSON: {}}}


# Documented on every route so that clients (and schema checkers) know the shape of each error.
COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: _problem_response("No token, or an unknown or revoked token"),
    403: _problem_response("The token's role may not do this"),
    422: _problem_response("Invalid input"),
    429: _problem_response("Too many failed authentication attempts from this client"),
    503: _problem_response("The database or the secret backend is unreachable"),
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: _problem_response("Unknown id or interaction type")}
CONFLICT: dict[int | str, dict[str, Any]] = {409: _problem_response("Duplicate name, stale version, or still in use")}
COMMON_RESPONSES[413] = _problem_response("The body is larger than 1 MB")
# For operations that call a provider: its failure is the caller's to fix, reported with the check's outcome.
PROVIDER_FAILED: dict[int | str, dict[str, Any]] = {
    422: _problem_response(
        "Invalid input, or the provider failed its check (unreachable, key rejected, timeout, bad answer, "
        "blocked by the outbound guard): then `validation` holds the outcome and nothing was stored",
        ProviderProblem,
    )
}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LLMConfigError)
    async def domain_error(_request: Request, exc: LLMConfigError) -> JSONResponse:
        if isinstance(exc, ProviderError):
            return provider_problem(exc)
        status = next((code for kind, code in STATUS_BY_ERROR if isinstance(exc, kind)), 400)
        return problem(
            status, str(exc), kind=exc.problem_type if isinstance(exc, NotConfiguredError) else "about:blank"
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI parses the body before it runs the auth dependencies; who is asking is checked first anyway,
        # so that an anonymous or read-only caller learns nothing from how their input was judged.
        refusal = await _refusal(request)
        if refusal is not None:
            return refusal
        found = input_problems(exc.errors(), strip=REQUEST_PARTS, whole="body")
        problems = [FieldProblem(field=p.field, message=p.message) for p in found]
        return problem(422, describe(found), errors=problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:
            # The framework's only 400: a body it cannot decode. Invalid input is 422 here, as elsewhere.
            refusal = await _refusal(request)
            return refusal or problem(422, "Invalid input: the body is not valid UTF-8 JSON")
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        return problem(exc.status_code, detail, headers=getattr(exc, "headers", None))


async def _refusal(request: Request) -> JSONResponse | None:
    """401/403/429 for a request its caller may not make (by the access the route declares), else None."""
    from llmconfig.api import authz
    from llmconfig.api.deps import access_of, bearer_token, identify

    access = access_of(request.scope.get("route"))
    if access is None:
        return None
    try:
        caller = await run_in_threadpool(identify, request, request.app.state.tokens, bearer_token(request))
    except StarletteHTTPException as refused:
        return problem(refused.status_code, str(refused.detail), headers=refused.headers)
    reason = authz.refusal(caller, access)
    return problem(403, reason) if reason is not None else None
