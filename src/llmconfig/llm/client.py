"""Client mode: resolutions from an llmconfig server, kept fresh by its change stream.

With ``LLMCONFIG_SERVER_URL`` and ``LLMCONFIG_TOKEN`` set (a ``client`` token), the model cache asks the
server instead of the database: no database URL, no master key and no database driver in this process.

* :class:`ServerSource` resolves with ``GET /resolve/{type}`` (keys included, kept in memory only), reads
  the revision with ``GET /revision``, and follows ``GET /changes`` (Server-Sent Events) on a daemon thread
  that reconnects with backoff and resumes with ``Last-Event-ID``; while the stream is down the cache polls
  the revision instead. The global resolutions a change event carries are used, once, instead of asking
  ``/resolve`` again.
* :class:`ServerUsageSink` posts usage events in batches (``POST /usage/events``), from the recorder's
  thread, never on the call path.

A server that cannot be reached, or answers with a server error, is a
:class:`~llmconfig.errors.ServerUnavailableError`: the cache then serves what it resolved last, or the
environment fallback.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import urllib3

from llmconfig.config.resolution import Resolution, Target
from llmconfig.config.schemas import storable_user_id
from llmconfig.db.changes import RESYNC, Announcement, ChangeKind
from llmconfig.errors import (
    LLMConfigError,
    NotConfiguredError,
    NotFoundError,
    ServerUnavailableError,
    SettingsError,
)
from llmconfig.llm.resolved import ResolvedConfig, server_key_ref
from llmconfig.providers.keys import ApiKey
from llmconfig.settings import Settings
from llmconfig.usage.recorder import UsageEvent, event_fields
from llmconfig.usage.spend import SpentBudget

log = logging.getLogger("llmconfig.client")

# Usage event fields the first servers did not know (their batches are refused with an unknown field).
_NEWER = frozenset({"variant", "key_hint"})

API_PREFIX = "/api/v1/llm"
MAX_BACKOFF = 5.0


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One Server-Sent Event: its type (``message`` when unnamed), data and id."""

    name: str
    data: str
    id: str | None


def parse_events(lines: Iterator[str]) -> Iterator[StreamEvent]:
    """The events of a ``text/event-stream``, given its lines (comments and unknown fields are skipped)."""
    name, event_id = "message", None
    data: list[str] = []
    for line in lines:
        if not line:
            if data or name != "message":
                yield StreamEvent(name, "\n".join(data), event_id)
            name, data, event_id = "message", [], None
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
        elif field == "id":
            event_id = value


class ServerConnection:
    """The HTTP connections to the server, with the token; turns every failure into one of our errors.

    urllib3 (already here for boto3) rather than the SDKs' httpx2: a resolution after a change waits on one
    request, and urllib3 spends half the time of httpx2 on it in this process, most of all when the process was
    idle before. Its pool is thread-safe and replaces connections the server closed while they were idle.
    """

    def __init__(self, settings: Settings) -> None:
        if settings.server_url is None or settings.token is None:
            raise SettingsError("Client mode needs both LLMCONFIG_SERVER_URL and LLMCONFIG_TOKEN")
        self.url = settings.server_url
        self.connect_timeout = min(settings.request_timeout, 5.0)
        self.headers = {"Authorization": f"Bearer {settings.token.get_secret_value()}"}
        # A path the server is published under (behind a proxy) comes before the API's.
        self._prefix = (urllib3.util.parse_url(self.url).path or "").rstrip("/") + API_PREFIX
        self.pool = urllib3.connection_from_url(
            self.url,
            headers=self.headers,
            timeout=urllib3.Timeout(connect=self.connect_timeout, read=settings.request_timeout),
            # A request that could not connect is tried once more; one that was sent is not (usage events).
            retries=urllib3.Retry(total=1, connect=1, read=0, status=0, other=0, redirect=False),
            maxsize=8,
        )

    def path(self, path: str) -> str:
        return self._prefix + path

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: Any = None,
        stream: bool = False,
        headers: dict[str, str] | None = None,
        timeout: urllib3.Timeout | None = None,
    ) -> urllib3.BaseHTTPResponse:
        url = self.path(path) + (f"?{urlencode(params)}" if params else "")
        options: dict[str, Any] = {"timeout": timeout} if timeout is not None else {}
        try:
            response = self.pool.request(
                method,
                url,
                json=json,
                headers={**self.headers, **headers} if headers else None,
                preload_content=not stream,
                **options,
            )
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ServerUnavailableError(
                f"The llmconfig server at {self.url} cannot be reached ({_reason(exc)}); check "
                "LLMCONFIG_SERVER_URL and that the server is running",
                detail=_reason(exc),
            ) from None
        status = response.status
        if status >= 500 or status in (401, 403):
            detail = _detail(response)
            response.release_conn()
            if status >= 500:
                raise ServerUnavailableError(
                    f"The llmconfig server at {self.url} answered {status}: {detail}", detail=f"HTTP {status}"
                )
            if status == 401:
                raise LLMConfigError(
                    f"The llmconfig server at {self.url} refused LLMCONFIG_TOKEN (401: {detail}); create a client "
                    "token with `llmconfig tokens create --role client` and set it"
                )
            raise LLMConfigError(f"The llmconfig server at {self.url} refused this request: {detail}")
        return response

    def close(self) -> None:
        self.pool.close()


def _reason(exc: Exception) -> str:
    """The failure's kind, as the server's operator would look it up (the root cause of a retry error)."""
    reason = getattr(exc, "reason", None)
    return type(reason if isinstance(reason, Exception) else exc).__name__


def _detail(response: urllib3.BaseHTTPResponse) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason or "no detail"
    return str(body.get("detail") or body) if isinstance(body, dict) else str(body)


class ServerSource:
    """The model cache's source in client mode; see the module docstring."""

    def __init__(self, settings: Settings, connection: ServerConnection, spend: ServerSpend | None = None) -> None:
        self._connection = connection
        self._spend = spend
        self._heartbeat = settings.stream_heartbeat
        # Keys by reference (provider id and version, key id), as the last resolutions handed them over.
        self._keys: dict[str, ApiKey] = {}
        self._revision: int | None = None
        # The global resolutions the latest change event carried, by interaction type; each is used once.
        self._pushed: dict[str, ResolvedConfig] = {}
        self._subscribers: tuple[Callable[[Announcement], None], ...] = ()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._thread: threading.Thread | None = None

    # -- ResolutionSource --------------------------------------------------------------------------

    def resolve(self, interaction_type: str, user_id: str | None) -> tuple[Resolution | None, int]:
        # An id the server cannot store an override for follows the global entry, as in local mode.
        params = {"user_id": user_id} if user_id is not None and storable_user_id(user_id) else None
        if params is None and (pushed := self._take_pushed(interaction_type)) is not None:
            return self._accept(pushed)
        response = self._connection.request("GET", f"/resolve/{quote(interaction_type, safe='')}", params=params)
        if response.status == 404:
            problem = response.json() if response.headers.get("content-type", "").endswith("json") else {}
            if isinstance(problem, dict) and problem.get("type") == NotConfiguredError.problem_type:
                return None, self._revision or 0
            raise NotFoundError(_detail(response))
        if response.status != 200:
            raise LLMConfigError(f"The llmconfig server answered {response.status}: {_detail(response)}")
        return self._accept(ResolvedConfig.model_validate_json(response.data))

    def _accept(self, resolved: ResolvedConfig) -> tuple[Resolution | None, int]:
        with self._lock:
            for target in resolved.all_targets():
                for key in target.pool_keys():
                    self._keys[server_key_ref(target.provider_id, target.provider_version, key.key_id)] = key
            self._note_revision(resolved.revision)
        return resolved.resolution(), resolved.revision

    def _take_pushed(self, interaction_type: str) -> ResolvedConfig | None:
        with self._lock:
            return self._pushed.pop(interaction_type, None)

    def revision(self) -> int:
        response = self._connection.request("GET", "/revision")
        revision = int(response.json()["revision"])
        with self._lock:
            self._note_revision(revision)
        return revision

    def api_keys(self, target: Target) -> tuple[ApiKey, ...]:
        return tuple(key for stored in target.api_keys if (key := self._keys.get(stored.reference)) is not None)

    def subscribe(self, subscriber: Callable[[Announcement], None]) -> None:
        with self._lock:
            self._subscribers = (*self._subscribers, subscriber)
            if self._thread is None:
                self._thread = threading.Thread(target=self._follow, name="llmconfig-changes", daemon=True)
                self._thread.start()

    @property
    def pushed(self) -> bool:
        return self._connected.is_set()

    def forget(self) -> None:
        with self._lock:
            self._pushed = {}

    def close(self) -> None:
        self._stop.set()

    # -- the change stream -------------------------------------------------------------------------

    def _note_revision(self, revision: int | None) -> None:
        if revision is not None and (self._revision is None or revision > self._revision):
            self._revision = revision

    def _deliver(self, announcement: Announcement) -> None:
        for subscriber in self._subscribers:
            try:
                subscriber(announcement)
            except Exception:  # a faulty subscriber must not end the stream
                log.exception("change subscriber failed for %s", announcement.change.encode())

    def _follow(self) -> None:
        backoff = 0.1
        connection = self._connection
        # Heartbeats arrive every `stream_heartbeat` seconds: three missed ones mean the stream is dead.
        timeout = urllib3.Timeout(connect=connection.connect_timeout, read=self._heartbeat * 3)
        while not self._stop.is_set():
            headers = {"Accept": "text/event-stream"}
            if self._revision is not None:
                headers["Last-Event-ID"] = str(self._revision)
            try:
                response = connection.request("GET", "/changes", headers=headers, stream=True, timeout=timeout)
                try:
                    if response.status == 200:
                        backoff = 0.1
                        self._read(response)
                    elif not self._stop.is_set():
                        log.warning(
                            "The change stream of %s answered %s; checking the revision instead",
                            connection.url,
                            response.status,
                        )
                finally:
                    response.release_conn()
            except (LLMConfigError, urllib3.exceptions.HTTPError, OSError) as exc:
                if self._connected.is_set():
                    log.warning("Lost the change stream of %s (%s); reconnecting", connection.url, _reason(exc))
            finally:
                self._connected.clear()
            if self._stop.wait(backoff):
                return
            backoff = min(MAX_BACKOFF, backoff * 2)

    def _read(self, response: urllib3.BaseHTTPResponse) -> None:
        self.forget()  # carried before the stream broke: what changed since is unknown
        self._connected.set()
        for event in parse_events(_lines(response)):
            if self._stop.is_set():
                return
            revision = int(event.id) if event.id and event.id.isdigit() else None
            pushed: dict[str, ResolvedConfig] = {}
            if event.name == "change":
                announcement = Announcement.from_json(event.data)
                if announcement.change.kind is ChangeKind.SPEND and self._spend is not None:
                    self._spend.changed()
                pushed = _pushed_resolutions(event.data, revision)
            elif event.name == "resync":
                announcement = RESYNC
            else:
                continue
            # Before the change is delivered: the cache drops what it changed, and resolves it from these.
            with self._lock:
                self._pushed = pushed
                self._note_revision(revision)
            self._deliver(announcement)


def _pushed_resolutions(data: str, revision: int | None) -> dict[str, ResolvedConfig]:
    """The resolutions a change event carries (none when they are older than its revision, or malformed)."""
    if revision is None or '"resolved"' not in data:
        return {}
    try:
        carried = json.loads(data).get("resolved") or {}
        resolutions = {name: ResolvedConfig.model_validate(body) for name, body in carried.items()}
    except (ValueError, AttributeError) as exc:  # pydantic's ValidationError is a ValueError
        log.warning("ignored the resolutions a change event carried: %s", exc)
        return {}
    return {name: resolved for name, resolved in resolutions.items() if resolved.revision >= revision}


def _lines(response: urllib3.BaseHTTPResponse) -> Iterator[str]:
    """The lines of a streamed body as they arrive (``read1`` returns what has come, never waits for more)."""
    pending = b""
    while chunk := response.read1():
        *complete, pending = (pending + chunk).split(b"\n")
        for line in complete:
            yield line.removesuffix(b"\r").decode("utf-8", errors="replace")


class ServerSpend:
    """Which budgets are spent, as the server says (``GET /spend``): read again every ``budget_refresh`` seconds
    on a background thread once a resolution carried budgets, and at once when the change stream says so."""

    def __init__(self, settings: Settings, connection: ServerConnection) -> None:
        self._connection = connection
        self._refresh = settings.budget_refresh
        self._spent: dict[str, SpentBudget] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()

    def spent(self, scope: str) -> SpentBudget | None:
        if self._thread is None:
            self._start()
        return self._spent.get(scope)

    def read(self) -> None:
        response = self._connection.request("GET", "/spend")
        if response.status == 200:
            self._spent = {item["scope"]: SpentBudget(**item) for item in response.json()["spent"]}

    def changed(self) -> None:
        """A budget became spent or is no longer: read again now."""
        self._wake.set()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            # The first check answers from the server rather than from nothing.
            with contextlib.suppress(LLMConfigError):
                self.read()
            self._thread = threading.Thread(target=self._follow, name="llmconfig-spend", daemon=True)
            self._thread.start()

    def _follow(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._refresh)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.read()
            except LLMConfigError as exc:  # keep the last figures while the server cannot say
                log.debug("Cannot read the spend of the budgets from the server: %s", exc)


class ServerUsageSink:
    """Posts a batch of usage events to the server (called on the usage recorder's thread)."""

    def __init__(self, connection: ServerConnection) -> None:
        self._connection = connection

    def __call__(self, batch: list[UsageEvent]) -> None:
        # Fields newer than the first servers are left out when unset, so that those servers accept the batch.
        events = [
            {name: value for name, value in event_fields(event).items() if value is not None or name not in _NEWER}
            | {"at": event.at.isoformat()}
            for event in batch
        ]
        response = self._connection.request("POST", "/usage/events", json={"events": events})
        if response.status != 202:
            raise LLMConfigError(f"The llmconfig server refused {len(batch)} usage events: {_detail(response)}")
