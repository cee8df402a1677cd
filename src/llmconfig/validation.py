"""One wording for rejected input, shared by the REST API, the CLI and configuration as code.

pydantic reports each problem with its location, a message and the rejected input. Only the first two are
used: the input may be an API key. Nothing here imports FastAPI or Typer, so every face can use it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError as PydanticValidationError

# Where FastAPI says a value came from; the first part of its locations, not part of the field's name.
REQUEST_PARTS = frozenset({"body", "query", "path", "header", "cookie"})


@dataclass(frozen=True, slots=True)
class InputProblem:
    """One rejected field: its location as pydantic gives it, the dotted name shown to people, the message."""

    loc: tuple[str | int, ...]
    field: str
    message: str


def input_problems(
    errors: Iterable[Mapping[str, Any]], *, strip: frozenset[str] = frozenset(), whole: str = "input"
) -> list[InputProblem]:
    """The problems of pydantic ``errors()``; a first location part in ``strip`` is left out of the name,
    and a problem of the whole value is named ``whole``."""
    problems = []
    for error in errors:
        loc = tuple(error.get("loc", ()))
        if error.get("type") == "json_invalid":
            problems.append(InputProblem(loc=loc, field="body", message="the body is not valid JSON"))
            continue
        shown = loc[1:] if loc and loc[0] in strip else loc
        name = ".".join(str(part) for part in shown)
        problems.append(InputProblem(loc=loc, field=name or whole, message=str(error.get("msg", "invalid"))))
    return problems


def describe(
    problems: Sequence[InputProblem],
    *,
    lead: str | None = "Invalid input",
    where: Callable[[InputProblem], str] | None = None,
) -> str:
    """``Invalid input: field: message; other.field: message``; ``where`` may prefix each (a line number)."""
    parts = [f"{where(p) if where else ''}{p.field}: {p.message}" for p in problems]
    text = "; ".join(parts) or "the input was rejected"
    return f"{lead}: {text}" if lead else text


def invalid_input(exc: PydanticValidationError) -> str:
    """The one-line message for a pydantic ValidationError (what the CLI prints for a bad option value)."""
    return describe(input_problems(exc.errors()))
