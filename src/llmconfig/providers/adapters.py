"""Provider adapters: one per provider type, each able to discover models and build LangChain objects.

An adapter is stateless. It receives the provider's base URL and decrypted key for one call and forgets
them; keys are never logged, never put in exception messages, and never kept outside the LangChain
object the caller asked for. The objects it builds make their calls through the service's
:class:`~llmconfig.providers.clients.ModelClients` (with the provider's key pool, see
:mod:`llmconfig.providers.keys`), so every model call passes the outbound guard and the answer checks, as
validation and discovery do.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Protocol
from urllib.parse import urlsplit

import httpx2

from llmconfig.errors import (
    ProviderBadResponseError,
    ProviderError,
    ProviderTimeoutError,
    ProviderUnauthorizedError,
    ProviderUnreachableError,
    ValidationError,
)
from llmconfig.providers.answers import describe_size, display_host
from llmconfig.providers.catalog import ANTHROPIC_BUILTIN_MODELS, DiscoveredModel, infer_kind
from llmconfig.providers.outbound import DEFAULT_MAX_RESPONSE_BYTES, check_scheme
from llmconfig.providers.transport import OutboundClient

if TYPE_CHECKING:
    # LangChain costs about a second to import; the CLI and the API only need it when building models.
    from langchain_core.embeddings import Embeddings
    from langchain_core.language_models import BaseChatModel

    from llmconfig.providers.clients import HTTPClients

ANTHROPIC_API_VERSION = "2023-06-01"
OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
ANTHROPIC_DEFAULT_BASE_URL = "https://api.anthropic.com"
# Seconds to establish a connection to a model of a fallback chain before moving on to the next one.
FALLBACK_CONNECT_TIMEOUT = 3.0


class ProviderAdapter(Protocol):
    """What llmconfig needs from a kind of provider.

    ``base_url`` is always the value returned by :meth:`normalise_base_url`, so adapters can rely on its
    shape. ``discover`` raises a :class:`~llmconfig.errors.ProviderError` subclass whose ``status`` is
    the validation status to report; ``chat_model`` and ``embeddings`` only construct objects and make no
    network calls. The objects they build send every request through ``clients``.
    """

    provider_type: ClassVar[str]

    def normalise_base_url(self, base_url: str | None) -> str: ...

    def discover(self, client: httpx2.Client, *, base_url: str, api_key: str | None) -> list[DiscoveredModel]: ...

    def chat_model(
        self,
        *,
        base_url: str,
        api_key: str | None,
        model: str,
        temperature: float | None,
        max_tokens: int | None,
        extra_params: dict[str, Any],
        timeout: float | None,
        clients: HTTPClients,
        fail_fast: bool = False,
    ) -> BaseChatModel: ...

    def embeddings(
        self,
        *,
        base_url: str,
        api_key: str | None,
        model: str,
        extra_params: dict[str, Any],
        timeout: float | None,
        clients: HTTPClients,
    ) -> Embeddings: ...


def check_http_url(base_url: str) -> str:
    """Reject anything that is not an absolute http(s) URL with a host, with a message that says why.

    The rejected URL is never quoted back: people paste keys into URLs.
    """
    candidate = base_url.strip()
    if any(ch <= " " or ch == "\x7f" for ch in candidate):
        raise ValidationError("Base URL must not contain spaces or control characters")
    try:
        parts = urlsplit(candidate)
        hostname = parts.hostname
        parts.port  # noqa: B018 - reading it validates it: "http://host:99999" and "http://host:abc" raise here
    except ValueError:
        raise ValidationError(
            "Base URL is not a valid URL (check the host and the port); for example http://localhost:8000/v1"
        ) from None
    if parts.scheme not in ("http", "https") or not hostname:
        raise ValidationError(
            "Base URL must be an absolute http:// or https:// URL with a host; "
            "give the server's API address, for example http://localhost:8000/v1"
        )
    if parts.username or parts.password:
        raise ValidationError(
            "Base URL must not contain credentials; pass the API key separately (--api-key-env or api_key)"
        )
    if parts.query or parts.fragment or "?" in candidate or "#" in candidate:
        raise ValidationError(
            "Base URL must not have a query string or fragment; pass the API key separately (--api-key-env or api_key)"
        )
    return candidate.rstrip("/")


def _fetch_json(client: httpx2.Client, url: str, headers: dict[str, str]) -> Any:
    """GET a JSON document, translating every failure into the validation status it stands for.

    Redirects are followed here, one hop at a time and at most ``client.max_redirects`` of them, rather than by
    httpx2: every hop must be http(s), every connection passes the outbound guard (with an
    :class:`~llmconfig.providers.transport.OutboundClient`), and the key is only sent again to the same
    origin (httpx2 would forward ``x-api-key`` anywhere). Messages name the host and path, never the query.
    """
    max_bytes, max_redirects = _limits(client)
    target, sent = httpx2.URL(url), dict(headers)
    for _hop in range(max_redirects + 1):
        check_scheme(target.scheme)
        host = display_host(target)
        response, body = _get(client, target, sent, max_bytes=max_bytes, host=host)
        if response.has_redirect_location:
            try:
                following = target.join(response.headers["location"])
            except httpx2.InvalidURL:
                raise ProviderBadResponseError(
                    f"{host} answered {target.path} with a redirect to an invalid URL; check the base URL"
                ) from None
            check_scheme(following.scheme, context=f"Redirect from {host}")
            if not _keeps_credentials(target, following):
                sent = {name: value for name, value in sent.items() if name.lower() not in _CREDENTIAL_HEADERS}
            target = following
            continue
        return _decode_json(response, body, host=host, path=target.path, url=str(target.copy_with(query=None)))
    raise ProviderBadResponseError(
        f"{display_host(httpx2.URL(url))} redirected more than {max_redirects} times; "
        "give the final address as the base URL"
    )


# Headers that carry the key: dropped when a redirect leaves the origin they were meant for.
_CREDENTIAL_HEADERS = frozenset({"authorization", "x-api-key", "api-key"})


def _limits(client: httpx2.Client) -> tuple[int, int]:
    max_bytes = client.max_response_bytes if isinstance(client, OutboundClient) else DEFAULT_MAX_RESPONSE_BYTES
    return max_bytes, client.max_redirects


def _keeps_credentials(origin: httpx2.URL, following: httpx2.URL) -> bool:
    """Same scheme, host and port, or the same host upgraded from http to https on the default ports."""
    if origin.host != following.host:
        return False
    if origin.scheme == following.scheme:
        return origin.port == following.port
    return origin.scheme == "http" and following.scheme == "https" and origin.port is None and following.port is None


def _get(
    client: httpx2.Client, url: httpx2.URL, headers: dict[str, str], *, max_bytes: int, host: str
) -> tuple[httpx2.Response, bytes]:
    """One GET without following redirects; the body is read in pieces and abandoned past ``max_bytes``."""
    read_timeout = client.timeout.read
    try:
        with client.stream("GET", url, headers=headers) as response:
            if response.has_redirect_location:
                return response, b""
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise _too_large(host, url.path, max_bytes)
            # The read timeout applies to each read; a server dripping a byte at a time would never trip it,
            # so the whole body must also arrive within the timeout.
            deadline = None if read_timeout is None else time.monotonic() + read_timeout
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise _too_large(host, url.path, max_bytes)
                if deadline is not None and time.monotonic() > deadline:
                    raise ProviderTimeoutError(
                        f"{host} did not finish its answer within {read_timeout:g} s; check that the server is "
                        "healthy or raise LLMCONFIG_REQUEST_TIMEOUT"
                    )
                chunks.append(chunk)
            return response, b"".join(chunks)
    except httpx2.TimeoutException:
        raise ProviderTimeoutError(
            f"{host} did not answer within {read_timeout or 0:g} s; check that the server is up "
            "or raise LLMCONFIG_REQUEST_TIMEOUT"
        ) from None
    except httpx2.DecodingError:
        raise ProviderBadResponseError(
            f"{host} answered {url.path} with a body that cannot be decompressed; check the server"
        ) from None
    except (httpx2.ReadError, httpx2.WriteError, httpx2.RemoteProtocolError) as exc:
        raise ProviderUnreachableError(
            f"{host} closed the connection without a complete answer ({type(exc).__name__}); "
            "check the base URL and the server's logs"
        ) from None
    except httpx2.HTTPError as exc:
        raise ProviderUnreachableError(
            f"Cannot connect to {host} ({type(exc).__name__}); check the base URL and that the server is running"
        ) from None


def _too_large(host: str, path: str, max_bytes: int) -> ProviderBadResponseError:
    return ProviderBadResponseError(
        f"{host} answered {path} with a body larger than {describe_size(max_bytes)}, far more than a model "
        "list; check the base URL (the limit is LLMCONFIG_OUTBOUND_MAX_RESPONSE_BYTES)"
    )


def _decode_json(response: httpx2.Response, body: bytes, *, host: str, path: str, url: str) -> Any:
    if response.status_code in (401, 403):
        raise ProviderUnauthorizedError(
            f"{host} rejected the API key (HTTP {response.status_code}); set a valid key for this provider"
        )
    if response.status_code == 404:
        raise _NotFound(f"{url} answered 404")
    if response.status_code >= 400:
        raise ProviderBadResponseError(
            f"{host} answered HTTP {response.status_code} to {path}; check the base URL and the server's logs"
        )
    if response.status_code >= 300:
        raise ProviderBadResponseError(
            f"{host} answered HTTP {response.status_code} to {path} without a redirect target; check the base URL"
        )
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        content_type = response.headers.get("content-type", "unknown").split(";")[0]
        kind = "an HTML page" if "html" in content_type else "a body that is not valid JSON"
        what = f"{kind} ({content_type})"
        raise ProviderBadResponseError(
            f"{host} answered {path} with {what}, not JSON; "
            "is the base URL the API endpoint (for OpenAI-compatible servers usually ending in /v1)?"
        ) from None


class _NotFound(ProviderBadResponseError):
    """A 404, which some adapters treat as 'no discovery endpoint' rather than a failure."""


def _model_list(document: Any, *, host: str) -> list[dict[str, Any]]:
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, list) or not all(isinstance(item, dict) and "id" in item for item in data):
        raise ProviderBadResponseError(
            f"{host} answered the models request with JSON of an unexpected shape; "
            "is it an OpenAI-compatible (or Anthropic) API?"
        )
    return data


class OpenAICompatibleAdapter:
    """OpenAI and every server that speaks its wire format (vLLM, Ollama, LM Studio, LocalAI, TGI …)."""

    provider_type: ClassVar[str] = "custom"

    def normalise_base_url(self, base_url: str | None) -> str:
        if not base_url:
            raise ValidationError(
                "A custom provider needs a base URL: the address of its OpenAI-compatible API, "
                "for example http://localhost:11434/v1"
            )
        url = check_http_url(base_url)
        # Every OpenAI-compatible server we know serves its API under /v1; operators often paste the
        # bare server address.
        if urlsplit(url).path in ("", "/"):
            url += "/v1"
        return url

    def discover(self, client: httpx2.Client, *, base_url: str, api_key: str | None) -> list[DiscoveredModel]:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        url = f"{base_url}/models"
        try:
            document = _fetch_json(client, url, headers)
        except _NotFound:
            raise ProviderBadResponseError(
                f"{url} does not exist (404); the base URL should be the OpenAI-compatible API root, "
                "usually ending in /v1"
            ) from None
        entries = _model_list(document, host=urlsplit(url).netloc)
        return [DiscoveredModel(str(item["id"]), infer_kind(str(item["id"]))) for item in entries]

    def chat_model(
        self,
        *,
        base_url: str,
        api_key: str | None,
        model: str,
        temperature: float | None,
        max_tokens: int | None,
        extra_params: dict[str, Any],
        timeout: float | None,
        clients: HTTPClients,
        fail_fast: bool = False,
    ) -> BaseChatModel:
        import openai
        from langchain_openai import ChatOpenAI

        params: dict[str, Any] = {
            "model": model,
            "base_url": base_url,
            # Local servers accept any key; the SDK insists on one.
            "api_key": api_key or "not-needed",
            "timeout": timeout,
            "stream_usage": True,
            **_openai_clients(clients),
            # Socket options only shape the clients ChatOpenAI would build itself; ours keep connections alive
            # on their own (see ModelClients). Empty, it also spares a misleading warning about proxies.
            "http_socket_options": (),
        }
        if fail_fast:
            # In a fallback chain a dead endpoint must cost milliseconds, not the SDK's retry budget.
            params["max_retries"] = 0
            params["timeout"] = openai.Timeout(timeout or 600.0, connect=FALLBACK_CONNECT_TIMEOUT)
        if temperature is not None:
            params["temperature"] = temperature
        if max_tokens is not None:
            params["max_tokens"] = max_tokens
        return ChatOpenAI(**{**extra_params, **params})

    def embeddings(
        self,
        *,
        base_url: str,
        api_key: str | None,
        model: str,
        extra_params: dict[str, Any],
        timeout: float | None,
        clients: HTTPClients,
    ) -> Embeddings:
        from langchain_openai import OpenAIEmbeddings

        return OpenAIEmbeddings(
            **{
                **extra_params,
                "model": model,
                "base_url": base_url,
                "api_key": api_key or "not-needed",
                "timeout": timeout,
                **_openai_clients(clients),
                # Client-side token splitting needs tiktoken's OpenAI vocabularies, which other servers'
                # models do not use (and which are downloaded at run time).
                "check_embedding_ctx_length": self._splits_by_tokens(base_url),
            }
        )

    def _splits_by_tokens(self, base_url: str) -> bool:
        return False


def _openai_clients(clients: HTTPClients) -> dict[str, Any]:
    return {
        "http_client": clients.sync_client,
        "http_async_client": clients.async_client,
        # LangChain reads OPENAI_PROXY from the environment; a proxy would connect out of reach of the guard
        # (and it refuses a proxy together with http_client).
        "openai_proxy": None,
    }


class OpenAIAdapter(OpenAICompatibleAdapter):
    provider_type: ClassVar[str] = "openai"

    def normalise_base_url(self, base_url: str | None) -> str:
        return super().normalise_base_url(base_url or OPENAI_DEFAULT_BASE_URL)

    def _splits_by_tokens(self, base_url: str) -> bool:
        return base_url == OPENAI_DEFAULT_BASE_URL


class AnthropicAdapter:
    provider_type: ClassVar[str] = "anthropic"

    def normalise_base_url(self, base_url: str | None) -> str:
        url = check_http_url(base_url or ANTHROPIC_DEFAULT_BASE_URL)
        # The Anthropic SDK appends /v1 itself. Every trailing /v1 goes, so normalising twice changes nothing.
        while url.endswith("/v1"):
            url = url.removesuffix("/v1")
        return url

    def discover(self, client: httpx2.Client, *, base_url: str, api_key: str | None) -> list[DiscoveredModel]:
        headers = {"anthropic-version": ANTHROPIC_API_VERSION}
        if api_key:
            headers["x-api-key"] = api_key
        url = f"{base_url}/v1/models?limit=1000"
        try:
            document = _fetch_json(client, url, headers)
        except _NotFound:
            return [DiscoveredModel(name, "chat", display) for name, display in ANTHROPIC_BUILTIN_MODELS]
        entries = _model_list(document, host=urlsplit(url).netloc)
        return [DiscoveredModel(str(item["id"]), "chat", _optional_str(item.get("display_name"))) for item in entries]

    def chat_model(
        self,
        *,
        base_url: str,
        api_key: str | None,
        model: str,
        temperature: float | None,
        max_tokens: int | None,
        extra_params: dict[str, Any],
        timeout: float | None,
        clients: HTTPClients,
        fail_fast: bool = False,
    ) -> BaseChatModel:
        from llmconfig.providers.anthropic_chat import GuardedChatAnthropic

        params: dict[str, Any] = {
            "model": model,
            "base_url": base_url,
            "api_key": api_key or "not-needed",
            "timeout": timeout,
            "http_client": clients.sync_client,
            "http_async_client": clients.async_client,
        }
        if fail_fast:
            # In a fallback chain a dead endpoint must cost milliseconds, not the SDK's retry budget.
            params["max_retries"] = 0
            params["connect_timeout"] = FALLBACK_CONNECT_TIMEOUT
        if temperature is not None:
            # Anthropic accepts 0–1 where OpenAI accepts 0–2; higher values are clamped rather than sent
            # to be rejected on every call.
            params["temperature"] = min(temperature, 1.0)
        if max_tokens is not None:
            params["max_tokens"] = max_tokens
        return GuardedChatAnthropic(**{**extra_params, **params})

    def embeddings(
        self,
        *,
        base_url: str,
        api_key: str | None,
        model: str,
        extra_params: dict[str, Any],
        timeout: float | None,
        clients: HTTPClients,
    ) -> Embeddings:
        raise ValidationError(
            "Anthropic has no embeddings API; configure the embeddings interaction type with an openai "
            "or custom provider"
        )


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


ADAPTERS: dict[str, Callable[[], ProviderAdapter]] = {
    "openai": OpenAIAdapter,
    "anthropic": AnthropicAdapter,
    "custom": OpenAICompatibleAdapter,
}
PROVIDER_TYPES = tuple(ADAPTERS)


def adapter_for(provider_type: str) -> ProviderAdapter:
    """The adapter of a provider type, or a ValidationError listing the known ones."""
    try:
        return ADAPTERS[provider_type]()
    except KeyError:
        raise ValidationError(
            f"Unknown provider type {provider_type!r}; use one of: {', '.join(PROVIDER_TYPES)}"
        ) from None


__all__ = [
    "PROVIDER_TYPES",
    "AnthropicAdapter",
    "OpenAIAdapter",
    "OpenAICompatibleAdapter",
    "ProviderAdapter",
    "ProviderError",
    "adapter_for",
]
