"""A provider's event stream on its way to the client: read ahead until there is something to send (so that a
stream failing before its first event can still fall back), then relayed as it arrives, with a failure after
that told to the client inside the stream."""

from __future__ import annotations

from collections.abc import AsyncIterator

from llmconfig.gateway.anthropic_stream import StreamError
from llmconfig.gateway.errors import UPSTREAM
from llmconfig.gateway.streams import DONE, AnthropicToOpenAI, EventSplitter, PassThrough, sse
from llmconfig.gateway.upstream import Endpoint, StreamingAnswer, UpstreamFailure


class OpenStream:
    """A provider's event stream being relayed: what was read ahead, and the rest as it comes."""

    def __init__(self, answer: StreamingAnswer, endpoint: Endpoint, processor: PassThrough | AnthropicToOpenAI) -> None:
        self.answer = answer
        self.endpoint = endpoint
        self.processor = processor
        self.error: str | None = None
        self.ended = False
        self._chunks = answer.chunks()
        self._splitter = EventSplitter()
        self._first = b""

    async def prime(self) -> None:
        """Read until there is something to send; UpstreamFailure if the stream fails or ends before that."""
        try:
            async for chunk in self._chunks:
                self._first = self.processor.events(self._splitter.feed(chunk))
                if self._first:
                    return
        except StreamError as exc:
            raise UpstreamFailure(
                f"{self.endpoint.where} reported an error in its stream: {exc}", retryable=exc.retryable, kind=exc.kind
            ) from None
        raise UpstreamFailure(
            f"{self.endpoint.where} ended its stream without an event", retryable=True, kind="ProviderBadResponseError"
        )

    async def rest(self) -> AsyncIterator[bytes]:
        """What was read ahead, then the rest as it arrives; ``ended`` is set before the last bytes are yielded."""
        if self.processor.done:  # the whole stream came in the first read
            self.ended = True
            yield self._first
            return
        yield self._first
        try:
            self.processor.raise_failure()
            async for chunk in self._chunks:
                data = self.processor.events(self._splitter.feed(chunk))
                if self.processor.done:
                    self.ended = True
                    yield data
                    return
                if data:
                    yield data
                    self.processor.raise_failure()
            tail = self._splitter.rest()
            data = self.processor.events([tail]) if tail else b""
        except StreamError as exc:
            self.error = exc.kind or "StreamError"
            self.ended = True
            yield sse({"error": {"message": f"The {self.endpoint.where} failed mid-stream: {exc}", "type": UPSTREAM}})
            return
        except UpstreamFailure as failure:
            self.error = failure.kind
            self.ended = True
            yield sse({"error": {"message": f"The {failure}", "type": UPSTREAM, "param": None, "code": None}})
            return
        self.ended = True
        if self.processor.done:
            yield data
        elif isinstance(self.processor, AnthropicToOpenAI):
            self.error = "IncompleteStream"
            yield data + sse(
                {"error": {"message": f"The {self.endpoint.where} ended its stream early", "type": UPSTREAM}}
            )
        else:
            yield data + DONE  # an OpenAI-compatible server that closed without [DONE]: the stream still ends properly

    def close(self) -> None:
        self.answer.close()
