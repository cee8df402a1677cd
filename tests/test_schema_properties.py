"""Property-based tests of the input schemas and of the configuration service (hypothesis).

* For arbitrary JSON-like input, ``model_validate`` either succeeds or raises ``pydantic.ValidationError``.
* Whatever is accepted satisfies the documented rules (ranges, name charsets and lengths, base URL rules,
  keys never shown) and survives ``model_dump`` → ``model_validate`` unchanged.
* Random sequences of global writes, user overrides and clears leave the effective configuration equal to
  a plain in-memory model of the resolution rules.
"""

from __future__ import annotations

import math
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pydantic
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, SecretStr

from llmconfig import LLMConfigService
from llmconfig.config import ConfigUpdate
from llmconfig.config.schemas import FallbackTarget, InteractionTypeCreate, Rollback
from llmconfig.errors import LLMConfigError, NotFoundError
from llmconfig.errors import ValidationError as InputRejected
from llmconfig.providers import ProviderCreate, ProviderUpdate
from llmconfig.providers.adapters import adapter_for
from llmconfig.settings import Settings

SCHEMAS: tuple[type[BaseModel], ...] = (
    ConfigUpdate,
    FallbackTarget,
    Rollback,
    InteractionTypeCreate,
    ProviderCreate,
    ProviderUpdate,
)
PROVIDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
TYPE_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}")
CREDENTIAL_NAME = re.compile(r"key|secret|token|password|auth|header|base_url|api_base|organization|proxy", re.I)
RESERVED = {"model", "model_name", "temperature", "max_tokens", "timeout", "streaming", "http_client"}

QUICK = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
THOROUGH = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)

# ------------------------------------------------------------------------------------------------ strategies

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
# Names that the schemas know, so that arbitrary values reach their validators instead of "extra forbidden".
FIELD_NAMES = sorted({name for schema in SCHEMAS for name in schema.model_fields})
nasty_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)) | st.sampled_from("\x00\n\t\r\x1b\x7f \u200b"),
    max_size=120,
)
name_like = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,110}\Z") | st.sampled_from(["gpt-4o", "a"]) | nasty_text
api_keys = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=8, max_size=60).map(
    lambda s: f"sk-prop-{s}"
)
fallback_like = st.fixed_dictionaries(
    {"provider_id": name_like, "model_name": name_like}, optional={"extra": json_values}
)
field_values: dict[str, st.SearchStrategy[Any]] = {
    "provider_id": name_like,
    "model_name": name_like,
    "temperature": st.floats(min_value=-1, max_value=3) | st.floats() | json_values,
    "max_tokens": st.integers(min_value=-5, max_value=10_000_005) | st.booleans() | json_values,
    "extra_params": st.dictionaries(st.text(max_size=20) | st.sampled_from(sorted(RESERVED)), json_values, max_size=4)
    | json_values,
    "fallbacks": st.lists(fallback_like, max_size=12) | json_values,
    "version": st.integers(min_value=-3, max_value=2**40) | json_values,
    "name": name_like | st.from_regex(r"\A[a-z][a-z0-9_-]{0,70}\Z"),
    "kind": st.sampled_from(["chat", "embeddings", "completion", ""]),
    "description": st.text(max_size=520),
    "provider_type": st.sampled_from(["openai", "anthropic", "custom", "azure", ""]),
    "api_base_url": st.none() | nasty_text | st.just("http://127.0.0.1:8000/v1"),
    "api_key": st.none() | api_keys | nasty_text,
    "enabled": st.booleans() | json_values,
}


def shaped(schema: type[BaseModel]) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts with the schema's own fields (required ones always present), values valid or not."""
    fields = schema.model_fields
    required = {name: field_values.get(name, json_values) for name, info in fields.items() if info.is_required()}
    optional = {name: field_values.get(name, json_values) for name, info in fields.items() if not info.is_required()}
    return st.fixed_dictionaries(required, optional=optional)


schema_shaped = st.one_of(*(shaped(schema) for schema in SCHEMAS))


def validate(schema: type[BaseModel], data: Any) -> BaseModel | None:
    """The model, or None when pydantic rejected the input; any other exception fails the test."""
    try:
        return schema.model_validate(data)
    except pydantic.ValidationError:
        return None


def no_control_characters(value: str) -> bool:
    return not any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value)


# ------------------------------------------------------------------------------------------------ every schema


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: s.__name__)
@QUICK
@given(data=st.data())
def test_arbitrary_input_is_accepted_or_a_validation_error(schema: type[BaseModel], data: st.DataObject) -> None:
    data = data.draw(json_values | shaped(schema) | schema_shaped, label="input")
    model = validate(schema, data)
    if model is None:
        return
    # Round trip: what a model dumps, it reads back unchanged.
    again = schema.model_validate(model.model_dump())
    assert again == model or _equal_with_nan(again.model_dump(), model.model_dump())


def _equal_with_nan(left: Any, right: Any) -> bool:
    if isinstance(left, float) and isinstance(right, float):
        return left == right or (math.isnan(left) and math.isnan(right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_equal_with_nan(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(_equal_with_nan(a, b) for a, b in zip(left, right, strict=True))
    return bool(left == right)


# ------------------------------------------------------------------------------------------------ config


@THOROUGH
@given(data=shaped(ConfigUpdate))
def test_accepted_config_updates_keep_the_rules(data: dict[str, Any]) -> None:
    update = validate(ConfigUpdate, data)
    assume(update is not None)
    assert isinstance(update, ConfigUpdate)
    assert 1 <= len(update.provider_id) <= 100 and 1 <= len(update.model_name) <= 255
    assert update.temperature is None or 0 <= update.temperature <= 2
    assert update.max_tokens is None or 0 < update.max_tokens <= 10_000_000
    assert update.fallbacks is None or len(update.fallbacks) <= 10

    def names(value: Any) -> Iterator[str]:
        if isinstance(value, dict):
            for key, item in value.items():
                yield str(key)
                yield from names(item)
        elif isinstance(value, list):
            for item in value:
                yield from names(item)

    params = update.extra_params or {}
    assert not RESERVED & set(params)
    assert not any(CREDENTIAL_NAME.search(name) for name in names(params))


@THOROUGH
@given(data=shaped(InteractionTypeCreate))
def test_accepted_interaction_types_have_a_plain_name(data: dict[str, Any]) -> None:
    created = validate(InteractionTypeCreate, data)
    assume(created is not None)
    assert isinstance(created, InteractionTypeCreate)
    assert TYPE_NAME.fullmatch(created.name) and created.kind in ("chat", "embeddings")
    assert len(created.description) <= 500


@pytest.mark.parametrize("field", ["provider_id", "model_name"])
@pytest.mark.parametrize("bad", ["a\x00b", "a\nb", "a\x1b[31mb"])
def test_config_updates_refuse_control_characters(field: str, bad: str) -> None:
    values = {"provider_id": "p", "model_name": "m", field: bad}
    with pytest.raises(pydantic.ValidationError):
        ConfigUpdate.model_validate(values)


# ------------------------------------------------------------------------------------------------ providers


@THOROUGH
@given(data=shaped(ProviderCreate) | shaped(ProviderUpdate))
def test_accepted_providers_keep_the_rules_and_never_show_the_key(data: dict[str, Any]) -> None:
    for schema in (ProviderCreate, ProviderUpdate):
        provider = validate(schema, data)
        if provider is None:
            continue
        name = getattr(provider, "name", None)
        assert name is None or (PROVIDER_NAME.fullmatch(name) and no_control_characters(name))
        base_url = provider.api_base_url  # type: ignore[attr-defined]
        assert base_url is None or len(base_url) <= 2048
        key: SecretStr | None = provider.api_key  # type: ignore[attr-defined]
        if key is None:
            continue
        value = key.get_secret_value()
        if schema is ProviderCreate:
            assert value.strip(), "a blank key is taken as no key"  # an update's blank key removes it (service)
        assert all(" " < ch <= "~" for ch in value.strip()), "keys travel in HTTP headers"
        assert len(value) <= 4096
        if len(value.strip()) >= 8:
            shown = (repr(provider), str(provider), provider.model_dump_json(), str(provider.model_dump()))
            assert not any(value.strip() in text for text in shown)
            # Only when asked for: the value itself.
            assert provider.model_dump()["api_key"].get_secret_value() == value


@st.composite
def url_like(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["http", "https", "ftp", "HTTP", "", "javascript"]))
    userinfo = draw(st.sampled_from(["", "user@", "user:pw@", ":@"]))
    host = draw(st.sampled_from(["localhost", "127.0.0.1", "[::1]", "[::1", "example.com", "", "ex ample", "é.com"]))
    port = draw(st.sampled_from(["", ":8000", ":0", ":65535", ":65536", ":99999", ":abc", ":"]))
    path = draw(st.sampled_from(["", "/", "/v1", "/v1/", "//", "/a b", "/v1/v1", "/x\x00"]))
    tail = draw(st.sampled_from(["", "?key=1", "#frag"]))  # a bare "?" or "#": see the test below
    return f"{scheme}://{userinfo}{host}{port}{path}{tail}" if scheme or draw(st.booleans()) else host + path


@pytest.mark.parametrize("provider_type", ["custom", "openai", "anthropic"])
@settings(max_examples=150, deadline=None)
@given(raw=url_like() | nasty_text)
def test_base_urls_are_normalised_or_rejected_clearly(provider_type: str, raw: str) -> None:
    adapter = adapter_for(provider_type)
    try:
        url = adapter.normalise_base_url(raw)
    except InputRejected as exc:
        message = str(exc)
        assert message and "\n" not in message
        assert "user:pw" not in message and "key=1" not in message, "the rejected URL is never quoted back"
        return
    parts = urlsplit(url)
    assert parts.scheme in ("http", "https") and parts.hostname
    assert not (parts.username or parts.password or parts.query or parts.fragment)
    assert not any(ch <= " " or ch == "\x7f" for ch in url)
    assert adapter.normalise_base_url(url) == url


@pytest.mark.parametrize("raw", ["http://localhost:99999/v1", "http://localhost:abc/v1"])
def test_base_url_with_an_impossible_port_is_rejected(raw: str) -> None:
    with pytest.raises(InputRejected):
        adapter_for("custom").normalise_base_url(raw)


@pytest.mark.parametrize("raw", ["http://localhost:8000?", "http://localhost:8000#"])
def test_base_url_with_an_empty_query_or_fragment(raw: str) -> None:
    try:
        url = adapter_for("custom").normalise_base_url(raw)
    except InputRejected:
        return
    assert urlsplit(url).path == "/v1" and not urlsplit(url).query and not urlsplit(url).fragment


# ------------------------------------------------------------------------------------------------ the service


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_in_extra_params_are_refused(number: str) -> None:
    """JSON parsed by Python (and by the REST API, which takes NaN) can carry NaN; PostgreSQL's JSON cannot."""
    body = '{"provider_id": "p", "model_name": "m", "extra_params": {"nested": {"top_p": NUMBER}}}'.replace(
        "NUMBER", number
    )
    with pytest.raises(pydantic.ValidationError, match="extra_params.nested.top_p is NaN or infinite"):
        ConfigUpdate.model_validate_json(body)


def test_a_user_id_with_a_nul_character(service: LLMConfigService) -> None:
    """User ids come from application code, often from end users: a NUL must not break get_llm."""
    service.providers.add(
        ProviderCreate(name="p", provider_type="custom", api_base_url="http://127.0.0.1:9/v1"), validate=False
    )
    service.config.set_global("reasoning", ConfigUpdate(provider_id="p", model_name="m"), actor="t")
    # No override can exist for such an id (PostgreSQL cannot store it): the global entry answers.
    assert service.get_llm("reasoning", user_id="user\x00one").model_name == "m"  # type: ignore[attr-defined]
    with pytest.raises(InputRejected, match="without control characters"):
        service.config.set_override(
            "user\x00one", "reasoning", ConfigUpdate(provider_id="p", model_name="m"), actor="t"
        )
    with pytest.raises(InputRejected, match="without control characters"):
        service.config.effective("user\none")


USERS = ("alice", "bob")
TYPES = ("reasoning", "tools")
PROVIDERS = ("p1", "p2")

operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("set"),
            st.sampled_from((None, *USERS)),
            st.sampled_from(TYPES),
            st.sampled_from(PROVIDERS),
            st.sampled_from(["m-a", "m-b"]),
            st.none() | st.sampled_from([0.0, 0.5, 2.0]),  # None: left out, so the current value stays
        ),
        st.tuples(st.just("clear"), st.sampled_from(USERS), st.sampled_from(TYPES)),
    ),
    max_size=10,
)


@pytest.fixture(scope="module")
def empty_database(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Path:
    return sqlite_template


@pytest.fixture
def fresh_service(empty_database: Path) -> Iterator[Callable[[], LLMConfigService]]:
    """Builds a service on a new copy of the migrated SQLite template, per hypothesis example."""
    made: list[tuple[LLMConfigService, Path]] = []

    def make() -> LLMConfigService:
        directory = Path(tempfile.mkdtemp(prefix="llmconfig-props-"))
        shutil.copyfile(empty_database, directory / "llmconfig.db")
        settings = Settings(
            _env_file=None,
            database_url=f"sqlite:///{directory / 'llmconfig.db'}",
            master_key_file=directory / "llmconfig.key",
            cache_ttl=0,
            usage_tracking=False,
            openai_api_key=None,  # no environment fallback in the model below
        )
        service = LLMConfigService(settings)
        made.append((service, directory))
        for name in PROVIDERS:
            service.providers.add(
                ProviderCreate(name=name, provider_type="custom", api_base_url="http://127.0.0.1:9/v1"),
                validate=False,
            )
        return service

    yield make
    for service, directory in made:
        service.close()
        shutil.rmtree(directory, ignore_errors=True)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_effective_config_follows_a_simple_model(
    fresh_service: Callable[[], LLMConfigService], ops: list[tuple[Any, ...]]
) -> None:
    service = fresh_service()
    # (user or None, type) -> (provider, model, temperature); a user's entry wins over the global one.
    model: dict[tuple[str | None, str], tuple[str, str, float | None]] = {}
    for op in ops:
        if op[0] == "set":
            _, user, kind, provider, model_name, temperature = op
            fields: dict[str, Any] = {"provider_id": provider, "model_name": model_name}
            if temperature is not None:
                fields["temperature"] = temperature
            update = ConfigUpdate(**fields)
            if user is None:
                service.config.set_global(kind, update, actor="prop")
            else:
                service.config.set_override(user, kind, update, actor="prop")
            current = model.get((user, kind))
            kept = current[2] if current is not None else None
            model[(user, kind)] = (provider, model_name, temperature if temperature is not None else kept)
        else:
            _, user, kind = op
            if (user, kind) in model:
                service.config.clear_override(user, kind, actor="prop")
                del model[(user, kind)]
            else:
                with pytest.raises(NotFoundError):
                    service.config.clear_override(user, kind, actor="prop")

    for user in (*USERS, f"stranger-{uuid.uuid4().hex[:6]}"):
        effective = service.config.effective(user)
        expected = {
            kind: entry for kind in TYPES if (entry := model.get((user, kind)) or model.get((None, kind))) is not None
        }
        got = {kind: (e.provider_name, e.model_name, e.temperature) for kind, e in effective.items() if kind in TYPES}
        assert got == expected
        for kind in TYPES:
            source = "user" if (user, kind) in model else "global" if (None, kind) in model else None
            if source is not None:
                assert effective[kind].source == source
                llm = service.get_llm(kind, user_id=user)
                provider, model_name, temperature = expected[kind]
                assert llm.model_name == model_name  # type: ignore[attr-defined]
                assert llm.temperature == temperature  # type: ignore[attr-defined]
            else:
                with pytest.raises(LLMConfigError, match="nothing is configured"):
                    service.get_llm(kind, user_id=user)
