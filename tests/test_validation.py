"""The shared wording of rejected input: field and message only, never the rejected value."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field
from pydantic import ValidationError as PydanticValidationError

from llmconfig.validation import REQUEST_PARTS, describe, input_problems, invalid_input

KEY = "sk-canary-rejected-value-4d2f8a"


class Inner(BaseModel):
    temperature: float = Field(le=2)


class Outer(BaseModel):
    name: str = Field(pattern=r"^[a-z]+$")
    inner: Inner


def rejection(data: object) -> PydanticValidationError:
    with pytest.raises(PydanticValidationError) as caught:
        Outer.model_validate(data)
    return caught.value


def test_each_problem_names_the_dotted_field_and_the_message_but_never_the_value() -> None:
    message = invalid_input(rejection({"name": KEY, "inner": {"temperature": 5}}))

    assert message.startswith("Invalid input: name: String should match pattern")
    assert "; inner.temperature: Input should be less than or equal to 2" in message
    assert KEY not in message


def test_request_parts_are_stripped_and_the_whole_body_has_a_name() -> None:
    errors = [
        {"loc": ("body", "path"), "msg": "Field required", "type": "missing"},
        {"loc": ("body",), "msg": "Field required", "type": "missing"},
        {"loc": ("body", 7), "msg": "JSON decode error", "type": "json_invalid"},
    ]

    problems = input_problems(errors, strip=REQUEST_PARTS, whole="body")

    # Only the leading part is where the value came from: a body field called "path" keeps its name.
    assert [(p.field, p.message) for p in problems] == [
        ("path", "Field required"),
        ("body", "Field required"),
        ("body", "the body is not valid JSON"),
    ]


def test_a_prefix_per_problem_and_no_lead() -> None:
    problems = input_problems(rejection({"name": "ok"}).errors(), whole="document")

    text = describe(problems, lead=None, where=lambda p: f"line {len(p.loc)}: ")

    assert text == "line 1: inner: Field required"
