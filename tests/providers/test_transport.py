"""The guarded transports and the answer checks on their own: no provider, and no network beyond loopback."""

from __future__ import annotations

import gzip
import json

import httpcore2
import httpx2
import pytest

from llmconfig.errors import ProviderBadResponseError, ProviderBlockedError
from llmconfig.providers.answers import AnswerChecks
from llmconfig.providers.clients import ModelClients
from llmconfig.providers.outbound import OutboundPolicy
from llmconfig.providers.transport import AsyncGuardedBackend, GuardedTransport
from tests.helpers import free_tcp_port

URL = "http://127.0.0.1:8000/v1/chat/completions?api-version=secret"


async def test_the_async_backend_checks_every_resolved_address() -> None:
    with pytest.raises(ProviderBlockedError, match="localhost resolves to"):
        await AsyncGuardedBackend(OutboundPolicy(deny="127.0.0.0/8, ::1")).resolve("localhost", 80)
    assert [str(a) for a in await AsyncGuardedBackend(OutboundPolicy()).resolve("127.0.0.1", 80)] == ["127.0.0.1"]
    vouched = AsyncGuardedBackend(OutboundPolicy(deny="127.0.0.0/8, ::1", allow="localhost"))
    assert all(address.is_loopback for address in await vouched.resolve("localhost", 80))
    with pytest.raises(ProviderBlockedError, match="169.254.169.254 is in the link-local range"):
        await AsyncGuardedBackend(OutboundPolicy()).resolve("169.254.169.254", 80)
    with pytest.raises(httpcore2.ConnectError, match="cannot resolve"):
        await AsyncGuardedBackend(OutboundPolicy()).resolve("no-such-host.invalid", 80)


def test_transport_errors_are_httpx2_errors() -> None:
    with httpx2.Client(transport=GuardedTransport(OutboundPolicy())) as client:
        with pytest.raises(httpx2.ConnectError):
            client.get(f"http://127.0.0.1:{free_tcp_port()}/")
        with pytest.raises(ProviderBlockedError):
            client.get("http://169.254.169.254/latest/meta-data/")


async def test_async_transport_errors_are_httpx2_errors() -> None:
    clients = ModelClients(OutboundPolicy())
    try:
        with pytest.raises(httpx2.ConnectError):
            await clients.async_client.get(f"http://127.0.0.1:{free_tcp_port()}/")
    finally:
        await clients.aclose()


def answer(status: int, body: bytes, content_type: str = "application/json", **headers: str) -> httpx2.Response:
    """An answer as a transport hands it on: a body still to be read, with only the headers given."""
    request = httpx2.Request("POST", URL)
    return httpx2.Response(
        status, headers={"content-type": content_type, **headers}, stream=httpx2.ByteStream(body), request=request
    )


def checked(response: httpx2.Response, max_bytes: int = 1024) -> httpx2.Response:
    assert response.request is not None
    passed = AnswerChecks(max_bytes).check(response.request, response)
    passed.read()
    return passed


def test_a_json_answer_is_passed_on_decoded() -> None:
    body = json.dumps({"id": "x"}).encode()
    passed = checked(answer(200, gzip.compress(body), **{"content-encoding": "gzip"}))
    assert passed.content == body and "content-encoding" not in passed.headers
    assert passed.json() == {"id": "x"}


@pytest.mark.parametrize(
    ("body", "content_type", "words"),
    [
        (b"<html>login</html>", "text/html; charset=utf-8", "with an HTML page (text/html), not JSON"),
        (b"not json{{", "application/json", "with a body that is not valid JSON (application/json)"),
        (b"OK", "text/plain", "with a body that is not valid JSON (text/plain)"),
        (b"  ", "application/json", "with an empty body"),
        (b"\xff\xfe\xfa", "application/json", "with a body that is not valid JSON"),
    ],
)
def test_a_successful_answer_that_is_not_json_is_refused(body: bytes, content_type: str, words: str) -> None:
    with pytest.raises(ProviderBadResponseError) as caught:
        checked(answer(200, body, content_type))
    message = str(caught.value)
    assert message.startswith(f"127.0.0.1:8000 answered POST /v1/chat/completions {words}")
    assert "secret" not in message and "api-version" not in message  # never the query string


def test_error_answers_and_streams_are_left_to_the_sdk_but_capped() -> None:
    page = b"<html>502 Bad Gateway</html>"
    assert checked(answer(502, page, "text/html")).content == page
    events = b"data: {}\n\n" * 10
    assert checked(answer(200, events, "text/event-stream")).content == events
    with pytest.raises(ProviderBadResponseError, match="larger than 1 kB"):
        checked(answer(200, b"data: {}\n\n" * 200, "text/event-stream"))
    assert checked(answer(204, b"", "")).content == b""


def test_the_cap_counts_decoded_bytes_and_declared_lengths() -> None:
    bomb = gzip.compress(b'{"x": "' + b"x" * 100_000 + b'"}')
    assert len(bomb) < 1024
    with pytest.raises(ProviderBadResponseError, match="larger than 1 kB"):
        checked(answer(200, bomb, **{"content-encoding": "gzip"}))
    with pytest.raises(ProviderBadResponseError, match="larger than 1 kB"):
        checked(answer(200, b"{}", **{"content-length": "999999"}))
    with pytest.raises(ProviderBadResponseError, match="cannot be decompressed"):
        checked(answer(200, b"definitely not gzip", **{"content-encoding": "gzip"}))
