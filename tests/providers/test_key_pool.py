"""The key pool's choices and rests (pure logic: no network, no database)."""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime, timedelta

import httpx2
import pytest

from llmconfig.providers.keys import MAX_REST, RATE_LIMIT_REST, REJECTED_REST, ApiKey, KeyPool, KeyPools, rest_for

A = ApiKey("a", "aaaa", "sk-first-key-aaaa")
B = ApiKey("b", "bbbb", "sk-second-key-bbbb")
C = ApiKey("c", "cccc", "sk-third-key-cccc")


def test_keys_are_taken_in_turn_skipping_resting_ones() -> None:
    pool = KeyPool("p", "openai", [A, B, C])
    assert [pool.choose() for _ in range(4)] == [A, B, C, A]
    pool.rest(B, 30)
    assert [pool.choose() for _ in range(4)] == [C, A, C, A]


def test_while_every_key_rests_the_one_back_first_is_used() -> None:
    pool = KeyPool("p", "openai", [A, B, C])
    pool.rest(A, 300)
    pool.rest(B, 20)
    pool.rest(C, 90)
    assert [pool.choose() for _ in range(3)] == [B, B, B]
    assert pool.free_other_than(frozenset()) is None


def test_a_longer_rest_is_not_shortened_by_a_shorter_one() -> None:
    pool = KeyPool("p", "openai", [A, B])
    pool.rest(A, REJECTED_REST)
    pool.rest(A, 1)
    until = pool.resting_until("a")
    assert until is not None and until - datetime.now(UTC) > timedelta(minutes=9)
    assert pool.resting_until("b") is None


def test_replacing_the_keys_keeps_the_rest_of_keys_that_stay_and_forgets_removed_ones() -> None:
    pools = KeyPools()
    pool = pools.pool("p", "custom", [A, B])
    pool.rest(A, 60)
    pool.rest(B, 60)
    assert pools.pool("p", "custom", [A, C]) is pool
    assert pool.keys == (A, C)
    assert pool.resting_until("a") is not None and pool.resting_until("b") is None
    assert pool.choose() == C
    changed = ApiKey("a", "zzzz", "sk-first-key-changed-zzzz")  # same id, another key: a fresh start
    pool.replace([changed, C])
    assert pool.resting_until("a") is None


def test_an_empty_pool_chooses_nothing() -> None:
    assert KeyPool("p", "custom").choose() is None


def test_the_credential_header_follows_the_provider_type() -> None:
    request = httpx2.Request("POST", "http://127.0.0.1/v1/messages", headers={"authorization": "Bearer not-needed"})
    anthropic = KeyPool("p", "anthropic", [A])
    anthropic.stamp(request, A)
    assert request.headers["x-api-key"] == A.value and "authorization" not in request.headers
    openai_request = httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")
    KeyPool("q", "custom", [B]).stamp(openai_request, B)
    assert openai_request.headers["authorization"] == f"Bearer {B.value}"


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (429, {"retry-after": "12"}, 12.0),
        (429, {"retry-after-ms": "1500", "retry-after": "12"}, 1.5),
        (429, {}, RATE_LIMIT_REST),
        (429, {"retry-after": "soon"}, RATE_LIMIT_REST),
        (429, {"retry-after": "999999"}, MAX_REST),
        (429, {"retry-after": "-5"}, 0.0),
        (429, {"retry-after": "nan"}, RATE_LIMIT_REST),
        (429, {"retry-after": "inf"}, MAX_REST),
        (429, {"retry-after": "Wed, 21 Oct 2015 07:28:00 -0000"}, 0.0),  # a date in the past, without a zone
        (429, {"retry-after": "Mon, 99 Foo 99999 99:99:99 GMT"}, RATE_LIMIT_REST),
        (429, {"retry-after-ms": "x"}, RATE_LIMIT_REST),
        (401, {"retry-after": "3"}, REJECTED_REST),
        (403, {}, REJECTED_REST),
        (500, {"retry-after": "3"}, None),
        (200, {}, None),
    ],
)
def test_how_long_a_key_rests_after_an_answer(status: int, headers: dict[str, str], expected: float | None) -> None:
    assert rest_for(status, httpx2.Headers(headers)) == expected


def test_a_retry_after_date_is_read_as_the_seconds_until_then() -> None:
    when = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    seconds = rest_for(429, httpx2.Headers({"Retry-After": when}))
    assert seconds is not None and 100 < seconds <= 120


def test_a_key_never_shows_its_value() -> None:
    assert A.value not in repr(A) and A.value not in str(A) and A.value not in repr(KeyPool("p", "openai", [A]).keys)
