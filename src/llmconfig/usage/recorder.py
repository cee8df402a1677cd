"""Writes usage records in the background, in batches, so that recording never slows or fails a call."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime
from operator import attrgetter

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from llmconfig.db.engine import transaction
from llmconfig.db.models import ModelPrice, UsageRecord

log = logging.getLogger("llmconfig.usage")


@dataclass(slots=True)
class UsageEvent:
    at: datetime
    interaction_type: str
    user_id: str | None
    provider_id: str | None
    provider_name: str
    model_name: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    success: bool
    error_class: str | None
    # The variant of the entry that made the call ("main" for its own model); None when the entry has none.
    variant: str | None = None
    # The hint of the provider key the call was last sent with (None: no key, or too short for a hint).
    key_hint: str | None = None


# The columns an event fills, read without dataclasses.asdict: it deep-copies every value, which costs more than
# the insert itself when the gateway records thousands of calls a second.
_EVENT_FIELDS = tuple(field.name for field in fields(UsageEvent))
_event_values = attrgetter(*_EVENT_FIELDS)


def estimate_cost(event: UsageEvent, prices: dict[str, tuple[float, float]]) -> float | None:
    price = prices.get(event.model_name)
    if price is None:
        return None
    return (event.prompt_tokens * price[0] + event.completion_tokens * price[1]) / 1_000_000


UsageSink = Callable[[list[UsageEvent]], None]


def event_fields(event: UsageEvent) -> dict[str, object]:
    """The columns an event fills (a shallow copy: its values are strings, numbers and a datetime)."""
    return dict(zip(_EVENT_FIELDS, _event_values(event), strict=True))


class DatabaseSink:
    """Writes a batch of usage events in one transaction, each with its cost from the price table."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def __call__(self, batch: list[UsageEvent]) -> None:
        with transaction(self._sessions, write=True) as session:
            prices = {
                row.model_name: (row.input_per_million, row.output_per_million)
                for row in session.scalars(select(ModelPrice))
            }
            # A Core insert of the table (executemany): the ORM's bulk path adds nothing here but time.
            session.execute(
                insert(UsageRecord.metadata.tables[UsageRecord.__tablename__]),
                [{**event_fields(event), "cost_usd": estimate_cost(event, prices)} for event in batch],
            )


class UsageRecorder:
    """A bounded queue drained by one daemon thread that hands what it finds to ``sink`` in batches.

    A batch gathers the events recorded within ``linger`` seconds of its first one (or until a flush).

    ``record`` only appends to the queue. If the sink fails (the database or the server is down) the batch is
    dropped (logged once per outage); if ``max_queue`` events are waiting the event is dropped and counted in
    ``dropped`` (``llmconfig_usage_events_dropped_total`` on the server's /metrics).
    """

    def __init__(
        self,
        sink: UsageSink,
        *,
        flush_interval: float = 0.5,
        max_batch: int = 1000,
        max_queue: int = 100_000,
        linger: float = 0.2,
    ) -> None:
        self._sink = sink
        self._flush_interval = flush_interval
        self._max_batch = max_batch
        self._linger = linger
        self._flush_requested = threading.Event()
        self._queue: queue.Queue[UsageEvent | threading.Event] = queue.Queue(maxsize=max_queue)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._failing = False
        self.dropped = 0

    def record(self, event: UsageEvent) -> None:
        if self._thread is None:
            self._start()
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything recorded so far is written (or dropped); False on timeout."""
        if self._thread is None:
            return True
        done = threading.Event()
        self._queue.put(done, timeout=timeout)
        self._flush_requested.set()
        return done.wait(timeout)

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="llmconfig-usage", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=self._flush_interval)
            except queue.Empty:
                continue
            batch: list[UsageEvent] = []
            markers: list[threading.Event] = []
            # While calls are being made, events keep coming: the thread sleeps ``linger`` seconds after the first
            # one and then takes all that came, so that it wakes (and takes the GIL the calls need) a few times a
            # second rather than for every event, and writes one transaction rather than many. A flush wakes it.
            if not isinstance(item, threading.Event) and self._linger > 0:
                self._flush_requested.wait(self._linger)
            self._flush_requested.clear()
            while True:
                if isinstance(item, threading.Event):
                    markers.append(item)
                else:
                    batch.append(item)
                if len(batch) >= self._max_batch:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                self._write(batch)
            for marker in markers:
                marker.set()

    def _write(self, batch: list[UsageEvent]) -> None:
        try:
            self._sink(batch)
        except Exception as exc:  # recording must never take the caller down, whatever the sink does
            if not self._failing:
                log.warning("Dropping %d usage records: %s", len(batch), exc)
            self._failing = True
            return
        if self._failing:
            log.warning("Recording usage again")
        self._failing = False
