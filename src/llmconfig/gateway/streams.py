"""Server-sent event streams on the way through: split into events, usage picked out, Anthropic's translated.

OpenAI-compatible streams are passed on event by event as they arrive (all the events of one network read
in one write), looked into only when an event carries a ``usage`` object: that one is noted for the usage
record, and dropped again when the client did not ask for usage (the gateway always asks the provider for
it). Anthropic's streams are parsed event by event and re-encoded as ``chat.completion.chunk`` events by
:class:`~llmconfig.gateway.anthropic.StreamTranslator`.
"""

from __future__ import annotations

from typing import Any

import orjson

from llmconfig.gateway.anthropic_stream import StreamError, StreamTranslator

DONE = b"data: [DONE]\n\n"
_NULL_USAGE = (b'"usage":null', b'"usage": null')


class EventSplitter:
    """Cuts a byte stream into complete SSE events (without their closing blank line)."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        data = self._buffer + chunk if self._buffer else chunk
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
        events = data.split(b"\n\n")
        self._buffer = events.pop()
        return [event for event in events if event.strip()]

    def rest(self) -> bytes:
        """What is left after the last complete event (an event whose blank line never came)."""
        rest, self._buffer = self._buffer.strip(), b""
        return rest


def event_data(event: bytes) -> tuple[str, bytes | None]:
    """An event's name (``event:``) and its data (the ``data:`` lines joined), or None without data."""
    name = ""
    data: list[bytes] = []
    for line in event.split(b"\n"):
        if line.startswith(b"data:"):
            data.append(line[5:].removeprefix(b" "))
        elif line.startswith(b"event:"):
            name = line[6:].strip().decode(errors="replace")
    return name, (b"\n".join(data) if data else None)


def sse(payload: Any) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


class PassThrough:
    """An OpenAI-compatible stream on its way to the client: notes its usage, drops the usage chunk if unasked."""

    def __init__(self, *, include_usage: bool) -> None:
        self.include_usage = include_usage
        self.usage: dict[str, Any] | None = None
        self.done = False

    def events(self, events: list[bytes]) -> bytes:
        """The bytes to send for ``events`` (each followed by its blank line)."""
        out: list[bytes] = []
        for event in events:
            if b'"usage"' in event and not any(null in event for null in _NULL_USAGE):
                kept = self._with_usage(event)
                if kept is None:
                    continue
                event = kept
            elif event.startswith(b"data: [DONE]") or event.startswith(b"data:[DONE]"):
                self.done = True
            out.append(event)
        if not out:
            return b""
        out.append(b"")
        return b"\n\n".join(out)

    def raise_failure(self) -> None:
        """Nothing to raise: errors in an OpenAI-compatible stream reach the client as the provider sent them."""

    def _with_usage(self, event: bytes) -> bytes | None:
        _, data = event_data(event)
        try:
            document = orjson.loads(data) if data is not None else None
        except orjson.JSONDecodeError:
            return event
        if not isinstance(document, dict) or not isinstance(document.get("usage"), dict):
            return event
        self.usage = document["usage"]
        if self.include_usage:
            return event
        if not document.get("choices"):
            return None  # the usage chunk the gateway asked for on its own account
        del document["usage"]
        return b"data: " + orjson.dumps(document)


class AnthropicToOpenAI:
    """An Anthropic Messages stream turned into the OpenAI chunks a client of ``/v1`` expects."""

    def __init__(self, *, created: int, include_usage: bool, response_tool: str | None) -> None:
        self.translator = StreamTranslator(created=created, response_tool=response_tool)
        self.include_usage = include_usage
        self.failure: StreamError | None = None

    @property
    def usage(self) -> dict[str, int]:
        return self.translator.usage

    @property
    def done(self) -> bool:
        return self.translator.finished

    def events(self, events: list[bytes]) -> bytes:
        """The bytes to send for ``events``; StreamError for the provider's ``error`` event.

        What came before the error in the same read is returned first; the error is raised by the next call
        (or :meth:`raise_failure`), so that no chunk the client could have had is lost.
        """
        self.raise_failure()
        out: list[bytes] = []
        try:
            self._translate(events, out)
        except StreamError as exc:
            if not out:
                raise
            self.failure = exc
        return b"".join(out)

    def raise_failure(self) -> None:
        """Raise the provider's error that came after what was last returned, if one did."""
        failure, self.failure = self.failure, None
        if failure is not None:
            raise failure

    def _translate(self, events: list[bytes], out: list[bytes]) -> None:
        for event in events:
            name, data = event_data(event)
            if data is None:
                continue
            try:
                document = orjson.loads(data)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(document, dict):
                continue
            out.extend(sse(chunk) for chunk in self.translator.feed(name, document))
            if self.translator.finished:
                if self.include_usage:
                    out.append(sse(self.translator.usage_chunk()))
                out.append(DONE)
                break
