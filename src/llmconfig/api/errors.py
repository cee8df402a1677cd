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
    ConflictError,
    DatabaseUnavailableError,
    LLMConfigError,
    NotFoundError,
    ProviderError,
    SecretBackendError,
    ValidationError,
)

PROBLEM_JSON = "application/problem+json"

STATUS_BY_ERROR: list[tuple[type[LLMConfigError], int]] = [
    (NotFoundError, 404),
    (ConflictError, 409),
    (ValidationError, 422),
    (ProviderError, 502),
    (DatabaseUnavailableError, 503),
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


def problem(status: int, detail: str, *, errors: list[FieldProblem] | None = None, headers: Any = None) -> JSONResponse:
    body = Problem(title=HTTPStatus(status).phrase, status=status, detail=detail, errors=errors)
    return JSONResponse(
        body.model_dump(exclude_none=True), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


def _problem_response(description: str) -> dict[str, Any]:
    return {"description": description, "model": Problem, "content": {PROBLEM_JSON: {}}}


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
BAD_GATEWAY: dict[int | str, dict[str, Any]] = {
    502: _problem_response("The provider could not be reached or answered badly")
}


def field_problems(errors: list[Any]) -> list[FieldProblem]:
    problems = []
    for error in errors:
        if error.get("type") == "json_invalid":
            problems.append(FieldProblem(field="body", message="the body is not valid JSON"))
            continue
        location = [str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path", "header")]
        problems.append(FieldProblem(field=".".join(location) or "body", message=str(error.get("msg", "invalid"))))
    return problems


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LLMConfigError)
    async def domain_error(_request: Request, exc: LLMConfigError) -> JSONResponse:
        status = next((code for kind, code in STATUS_BY_ERROR if isinstance(exc, kind)), 400)
        return problem(status, str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI parses the body before it runs the auth dependencies; who is asking is checked first anyway,
        # so that an anonymous or read-only caller learns nothing from how their input was judged.
        refusal = await _refusal(request)
        if refusal is not None:
            return refusal
        problems = field_problems(list(exc.errors()))
        detail = "; ".join(f"{p.field}: {p.message}" for p in problems)
        return problem(422, f"Invalid input: {detail}", errors=problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:
            # The framework's only 400: a body it cannot decode. Invalid input is 422 here, as elsewhere.
            refusal = await _refusal(request)
            return refusal or problem(422, "Invalid input: the body is not valid UTF-8 JSON")
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        return problem(exc.status_code, detail, headers=getattr(exc, "headers", None))


async def _refusal(request: Request) -> JSONResponse | None:
    """401/403/429 for a request to the API that its caller may not make, else None."""
    from llmconfig.api.deps import API_PREFIX, bearer_token, identify

    if not request.url.path.startswith(API_PREFIX):
        return None
    try:
        caller = await run_in_threadpool(identify, request, request.app.state.tokens, bearer_token(request))
    except StarletteHTTPException as refused:
        return problem(refused.status_code, str(refused.detail), headers=refused.headers)
    if request.method != "GET" and caller.role != "admin":
        return problem(403, "This needs an admin token; viewer tokens may only read")
    return None
