"""Shared machinery for the loopback provider peers.

A peer is a real HTTP/1.1 server (standard library only) bound to ``127.0.0.1`` on an
ephemeral port and served from a daemon thread.  Subclasses implement one provider's
wire format (routing, auth check, error shapes); this module provides everything else:

* thread start/stop (``stop()`` closes the listening socket *and* every open keep-alive
  connection, so the port refuses afterwards and pooled client connections die too);
* thread-safe recording of every request (:class:`RecordedRequest`);
* JSON and server-sent-event helpers (streams are sent with chunked transfer encoding);
* the misbehaviour modes (``peer.behaviour``) shared by every endpoint, and answers per API key
  (``peer.accepted_keys``, ``peer.answer_key(key, 429, retry_after=...)``), with the key each request
  carried recorded (``RecordedRequest.key``);
* a count of the TCP connections accepted (``peer.connections_opened``), to see connection reuse;
* the scripted-reply queue and the word-count "tokenizer" used for usage numbers;
* the standalone command line (``python -m tests.peers.openai_peer ...``).

Secrets: the received API key is compared and recorded in memory for the tests, but it is
never written into a response or a log line, and :class:`RecordedRequest`'s ``repr`` redacts
the credential headers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
import uuid
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, Final, Literal, Self, cast, get_args
from urllib.parse import parse_qsl, urlsplit

__all__ = [
    "BEHAVIOURS",
    "DEFAULT_API_KEY",
    "HUGE_BODY_BYTES",
    "SECRET_HEADERS",
    "BasePeer",
    "Behaviour",
    "KeyAnswer",
    "PeerResponse",
    "RecordedRequest",
    "ScriptedReply",
    "ToolCall",
    "count_words",
    "iter_texts",
    "json_response",
    "run_standalone",
    "split_stream_pieces",
    "sse_data",
    "sse_event",
]

Behaviour = Literal[
    "ok",
    "hang",
    "html",
    "garbage",
    "error500",
    "ratelimit429",
    "badrequest400",
    "reset",
    "huge",
    "gzip_bomb",
    "redirect",
]
BEHAVIOURS: Final[tuple[Behaviour, ...]] = get_args(Behaviour)

DEFAULT_API_KEY: Final = "sk-test-peer"

#: Header names (lower-case) whose values are credentials: redacted in ``repr`` and logs.
SECRET_HEADERS: Final = frozenset(
    {"authorization", "x-api-key", "api-key", "proxy-authorization", "cookie", "x-goog-api-key"}
)

_HTML_PAGE: Final = (
    b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
    b"<body><h1>502 Bad Gateway</h1><p>The upstream server is unavailable.</p></body></html>\n"
)
_GARBAGE_BODY: Final = b"not json{{"
#: Size of the "huge" body: far beyond any sane model list or completion.
HUGE_BODY_BYTES: Final = 50 * 1024 * 1024
_HUGE_CHUNK_BYTES: Final = 256 * 1024


# --------------------------------------------------------------------------- public data types


@dataclass
class ToolCall:
    """A tool call the peer should answer with (``id`` is generated per response when None)."""

    name: str
    arguments: dict[str, Any]
    id: str | None = None


@dataclass
class ScriptedReply:
    """One queued assistant reply: text, tool calls, or both."""

    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)

    def completion_tokens(self) -> int:
        """Output-token count the peer reports for this reply.

        Words of ``text`` plus the words of each tool call's arguments rendered with
        ``json.dumps(arguments)``; minimum 1.
        """
        words = count_words(self.text)
        words += sum(count_words(json.dumps(call.arguments)) for call in self.tool_calls)
        return max(1, words)


@dataclass(frozen=True)
class KeyAnswer:
    """What the peer answers every request that carries one given key: 429 (optionally with a Retry-After)
    or 401, whatever the request."""

    status: Literal[401, 429]
    retry_after: str | None = None


@dataclass
class RecordedRequest:
    """One request as received by a peer.

    ``path`` excludes the query string (see ``query``); ``headers`` has lower-case keys;
    ``json`` is the decoded body or None (empty or undecodable body); ``status`` is the
    status code answered (None while in flight, or when the connection was dropped).
    """

    method: str
    path: str
    headers: dict[str, str]
    json: Any
    query: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    status: int | None = None
    #: The API key the request carried (the provider's credential header), None without one.
    key: str | None = field(default=None, repr=False)

    @property
    def key_hint(self) -> str | None:
        """The last four characters of the key carried, as llmconfig's usage shows them."""
        return None if self.key is None else self.key[-4:]

    def __repr__(self) -> str:
        shown = {k: ("<redacted>" if k in SECRET_HEADERS else v) for k, v in self.headers.items()}
        return (
            f"RecordedRequest(method={self.method!r}, path={self.path!r}, query={self.query!r}, "
            f"status={self.status!r}, headers={shown!r}, json={self.json!r})"
        )


@dataclass
class PeerResponse:
    """What a route answers: a complete body, or (``events`` set) a chunked SSE stream."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    events: Iterable[bytes] | None = None


# --------------------------------------------------------------------------- helpers


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> PeerResponse:
    """A JSON response (compact UTF-8 encoding)."""
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return PeerResponse(status=status, body=body, headers=dict(headers or {}))


def sse_data(payload: Any) -> bytes:
    """One ``data:``-only server-sent event (OpenAI style). A ``str`` payload is sent verbatim."""
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


def sse_event(event: str, payload: Any) -> bytes:
    """One named server-sent event (Anthropic style)."""
    return f"event: {event}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


def count_words(text: str) -> int:
    """The peers' "tokenizer": whitespace-separated words."""
    return len(text.split())


def iter_texts(content: Any) -> Iterator[str]:
    """Every text found in a message ``content``: a string, or a list of parts/blocks.

    Parts are ``{"type": "text", "text": ...}`` (both providers); blocks carrying nested
    ``content`` (Anthropic ``tool_result``) are searched recursively. Other parts (images,
    tool_use inputs, ...) contribute nothing.
    """
    if isinstance(content, str):
        yield content
    elif isinstance(content, list):
        for part in content:
            yield from iter_texts(part)
    elif isinstance(content, dict):
        text = content.get("text")
        if isinstance(text, str):
            yield text
        elif "content" in content:
            yield from iter_texts(content["content"])


def split_stream_pieces(text: str) -> list[str]:
    """Split ``text`` into word pieces (each keeps its trailing whitespace); they join back to ``text``."""
    return [piece for piece in re.split(r"(?<=\s)(?=\S)", text) if piece]


def split_json_pieces(data: str, parts: int = 3) -> list[str]:
    """Split a JSON string into up to ``parts`` roughly equal fragments (for argument deltas)."""
    if not data:
        return []
    size = max(1, -(-len(data) // parts))
    return [data[i : i + size] for i in range(0, len(data), size)]


def new_id(prefix: str, length: int = 24) -> str:
    """A random provider-style id, e.g. ``call_3f0c...``."""
    return prefix + uuid.uuid4().hex[:length]


# --------------------------------------------------------------------------- server plumbing


class _PeerHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], peer: BasePeer) -> None:
        self.peer = peer
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _PeerRequestHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse DNS lookup that can take
        # seconds in sandboxes; the peer only ever needs the numeric address.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def track(self, conn: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(conn)
        self.peer._count_connection()

    def untrack(self, conn: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(conn)

    def close_connections(self) -> None:
        """Shut down every open (keep-alive or streaming) connection."""
        with self._connections_lock:
            conns = list(self._connections)
            self._connections.clear()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up (timeouts in tests, peer stopped mid-answer) are expected.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class _PeerRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real services (clients pool connections)
    server_version = "llmconfig-test-peer/1.0"
    sys_version = ""
    timeout = 60  # idle keep-alive connections are dropped after this many seconds
    # Headers and body go out in separate writes; without TCP_NODELAY, Nagle + delayed ACK
    # add ~40 ms to many responses.
    disable_nagle_algorithm = True

    @property
    def peer_server(self) -> _PeerHTTPServer:
        return cast(_PeerHTTPServer, self.server)

    def setup(self) -> None:
        super().setup()
        self.peer_server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.peer_server.untrack(self.connection)

    def _dispatch(self) -> None:
        self.peer_server.peer._serve(self)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # Method, path without the query string, status: never headers (they carry the key).
        if self.peer_server.peer.verbose:
            sys.stderr.write(f"[{self.peer_server.peer.name}] {self.command} {urlsplit(self.path).path} {code}\n")

    def log_message(self, format: str, *args: Any) -> None:
        # Only protocol errors arrive here (malformed requests); silent unless verbose.
        if self.peer_server.peer.verbose:
            sys.stderr.write(f"[{self.peer_server.peer.name}] {format % args}\n")


# --------------------------------------------------------------------------- the base peer


class BasePeer:
    """Provider-agnostic peer: subclasses implement routing, auth and error shapes."""

    def __init__(
        self,
        *,
        api_key: str | None,
        models: Sequence[str],
        name: str,
        embedding_dimensions: int = 8,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if isinstance(models, str):
            raise TypeError("models must be a sequence of model ids, not a string")
        self.api_key = api_key
        #: Model ids the peer knows (mutable: tests may append/remove at any time).
        self.models: list[str] = list(models)
        self.name = name
        self.embedding_dimensions = embedding_dimensions
        self.host = host
        self.requests: list[RecordedRequest] = []
        self.hang_seconds: float = 30.0
        self.models_endpoint: bool = True
        #: Location answered by behaviour "redirect" (absolute or relative URL).
        self.redirect_to: str | None = None
        #: Body size of behaviour "huge" (sent in chunks, never held in memory whole), and the size that the
        #: gzip-compressed body of behaviour "gzip_bomb" expands to.
        self.huge_bytes: int = HUGE_BODY_BYTES
        self.default_reply: str = f"Hello from {self.name}"
        #: Seconds to pause before each streamed event (0 = send as fast as possible).
        self.stream_delay: float = 0.0
        #: Write one line per request (method, path, status) to stderr; never headers.
        self.verbose: bool = False
        #: Keys accepted besides ``api_key`` (per test: emptied by ``reset()``).
        self.accepted_keys: set[str] = set()
        #: Fixed answers per key (see ``answer_key``; emptied by ``reset()``).
        self.key_answers: dict[str, KeyAnswer] = {}
        self._behaviour: Behaviour = "ok"
        self._requested_port = port
        self._port: int | None = None
        self._lock = threading.Lock()
        self._script: deque[ScriptedReply] = deque()
        self._stopped = threading.Event()
        self._connections_opened = 0
        self._server: _PeerHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- configuration

    @property
    def behaviour(self) -> Behaviour:
        """One of ``BEHAVIOURS`` ("ok", "hang", "html", ...); settable at any time."""
        return self._behaviour

    @behaviour.setter
    def behaviour(self, value: str) -> None:
        if value not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {value!r}; expected one of {', '.join(BEHAVIOURS)}")
        self._behaviour = value

    def answer_key(self, key: str, status: Literal[401, 429] | None, *, retry_after: str | None = None) -> None:
        """Answer every request carrying ``key`` with ``status`` (429 with ``retry_after`` when given, or 401);
        ``None`` answers it normally again."""
        with self._lock:
            if status is None:
                self.key_answers.pop(key, None)
            else:
                self.key_answers[key] = KeyAnswer(status, retry_after)

    def valid_keys(self) -> set[str]:
        """Every key a request may carry to be answered."""
        return {key for key in (self.api_key, *self.accepted_keys) if key is not None}

    def keys_sent(self, path: str | None = None) -> list[str | None]:
        """The key of each recorded request (to ``path`` only, when given), in order."""
        with self._lock:
            return [r.key for r in self.requests if path is None or r.path == path]

    def script(self, *replies: ScriptedReply) -> None:
        """Queue replies for the next chat/messages calls (FIFO)."""
        with self._lock:
            self._script.extend(replies)

    @property
    def connections_opened(self) -> int:
        """TCP connections accepted since the peer started (or since ``reset()``)."""
        with self._lock:
            return self._connections_opened

    def _count_connection(self) -> None:
        with self._lock:
            self._connections_opened += 1

    @property
    def pending_replies(self) -> int:
        """How many scripted replies are still queued."""
        with self._lock:
            return len(self._script)

    def next_reply(self) -> ScriptedReply:
        """Pop the next scripted reply, or build the default one."""
        with self._lock:
            if self._script:
                return self._script.popleft()
        return ScriptedReply(text=self.default_reply)

    def reset(self) -> None:
        """Forget recorded requests, scripted replies and the connection count, and restore the per-test knobs
        (``behaviour``, ``hang_seconds``, ``models_endpoint``, ``stream_delay``, ``redirect_to``,
        ``huge_bytes``) to their defaults.
        Constructor state (``api_key``, ``models``, ``name``, ``default_reply``) is kept."""
        with self._lock:
            self.requests.clear()
            self._script.clear()
            self._connections_opened = 0
            self.key_answers.clear()
            self.accepted_keys.clear()
        self._behaviour = "ok"
        self.hang_seconds = 30.0
        self.models_endpoint = True
        self.stream_delay = 0.0
        self.redirect_to = None
        self.huge_bytes = HUGE_BODY_BYTES

    # ----------------------------------------------------------------- recorded requests

    def requests_to(self, path: str, method: str | None = None) -> list[RecordedRequest]:
        """Recorded requests for one path (query string excluded), optionally one method."""
        with self._lock:
            return [r for r in self.requests if r.path == path and (method is None or r.method == method)]

    @property
    def last_request(self) -> RecordedRequest:
        with self._lock:
            if not self.requests:
                raise LookupError(f"{self.name} has received no request")
            return self.requests[-1]

    # ----------------------------------------------------------------- addresses

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError(f"{self.name} has not been started")
        return self._port

    @property
    def root_url(self) -> str:
        """``http://127.0.0.1:PORT`` (Anthropic SDK style base URL). Still valid after stop()."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1`` (OpenAI SDK style base URL). Still valid after stop()."""
        return f"{self.root_url}/v1"

    @property
    def running(self) -> bool:
        return self._server is not None

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> Self:
        if self._server is not None:
            return self
        self._stopped.clear()
        server = _PeerHTTPServer((self.host, self._requested_port), self)
        self._port = int(server.server_address[1])
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.01},  # bounds how long stop() waits
            name=f"{self.name}:{self._port}",
            daemon=True,
        )
        self._server, self._thread = server, thread
        thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = self._thread = None
        self._stopped.set()  # wakes "hang" handlers and ends streams
        server.shutdown()
        server.server_close()  # the listening socket: new connections are refused from now on
        server.close_connections()  # pooled keep-alive connections die too
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.root_url if self._port is not None else "not started"
        return f"<{type(self).__name__} {self.name!r} {where} behaviour={self._behaviour!r}>"

    # ----------------------------------------------------------------- provider hooks

    def check_auth(self, request: RecordedRequest) -> PeerResponse | None:
        """None when the request may proceed, else the provider's 401/400 response."""
        raise NotImplementedError

    def presented_key(self, request: RecordedRequest) -> str | None:
        """The API key the request carries, read as the provider reads it."""
        raise NotImplementedError

    def unauthorized(self) -> PeerResponse:
        """The provider's 401 answer to a key it does not accept."""
        raise NotImplementedError

    def route(self, request: RecordedRequest) -> PeerResponse:
        """Answer a request that passed the auth check (behaviour "ok")."""
        raise NotImplementedError

    def server_error(self) -> PeerResponse:
        """The provider's 500 answer."""
        raise NotImplementedError

    def rate_limited(self) -> PeerResponse:
        """The provider's 429 answer (``retry-after: 0`` is added by the base)."""
        raise NotImplementedError

    def bad_request(self) -> PeerResponse:
        """The provider's 400 answer to a request it refuses (behaviour "badrequest400")."""
        raise NotImplementedError

    def request_id_header(self) -> dict[str, str]:
        """Per-response request-id header(s)."""
        return {}

    # ----------------------------------------------------------------- request processing

    def _serve(self, handler: _PeerRequestHandler) -> None:
        split = urlsplit(handler.path)
        body = self._read_body(handler)
        try:
            decoded: Any = json.loads(body) if body else None
        except (ValueError, UnicodeDecodeError):
            decoded = None
        record = RecordedRequest(
            method=handler.command,
            path=split.path,
            headers={k.lower(): v for k, v in handler.headers.items()},
            json=decoded,
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
            body=body,
        )
        record.key = self.presented_key(record)
        with self._lock:
            self.requests.append(record)

        if self._behaviour == "reset":
            self._reset_connection(handler)
            return
        response = self._answer(record)
        if response is None:  # stopped while hanging: drop the connection unanswered
            handler.close_connection = True
            return
        record.status = response.status
        response.headers = {**self.request_id_header(), **response.headers}
        self._write(handler, response)

    @staticmethod
    def _reset_connection(handler: _PeerRequestHandler) -> None:
        """Drop the connection with a TCP RST (SO_LINGER 0) instead of an orderly FIN: "connection reset"."""
        handler.close_connection = True
        conn = handler.connection
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # The descriptor is released (sending the RST) once the handler's rfile/wfile are closed, in finish(),
        # before socketserver's shutdown(SHUT_WR) could send a FIN.
        conn.close()

    def _huge_body(self) -> Iterator[bytes]:
        """A JSON-looking body of ``huge_bytes`` bytes (an unterminated string), generated chunk by chunk."""
        head = b'{"object":"list","data":[],"padding":"'
        yield head
        remaining = self.huge_bytes - len(head)
        chunk = b"x" * _HUGE_CHUNK_BYTES
        while remaining > 0:
            piece = chunk if remaining >= len(chunk) else chunk[:remaining]
            remaining -= len(piece)
            yield piece

    def _gzip_bomb(self) -> Iterator[bytes]:
        """A gzip stream (a few kB per 10 MB) that expands to ``huge_bytes`` of the "huge" body."""
        compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # 16+: gzip framing
        for piece in self._huge_body():
            compressed = compressor.compress(piece)
            if compressed:
                yield compressed
        yield compressor.flush()

    def _answer(self, record: RecordedRequest) -> PeerResponse | None:
        mode = self._behaviour
        if mode == "hang":
            if self._stopped.wait(self.hang_seconds):
                return None
        elif mode == "html":
            return PeerResponse(200, _HTML_PAGE, "text/html; charset=utf-8")
        elif mode == "garbage":
            return PeerResponse(200, _GARBAGE_BODY, "application/json")
        elif mode == "huge":
            return PeerResponse(200, content_type="application/json", events=self._huge_body())
        elif mode == "gzip_bomb":
            return PeerResponse(
                200, content_type="application/json", headers={"Content-Encoding": "gzip"}, events=self._gzip_bomb()
            )
        elif mode == "redirect":
            if self.redirect_to is None:
                return PeerResponse(500, b"behaviour 'redirect' needs peer.redirect_to", "text/plain")
            return PeerResponse(302, b"", "text/plain", headers={"Location": self.redirect_to})
        elif mode == "error500":
            return self.server_error()
        elif mode == "badrequest400":
            return self.bad_request()
        elif mode == "ratelimit429":
            limited = self.rate_limited()
            limited.headers["retry-after"] = "0"
            return limited
        with self._lock:
            fixed = self.key_answers.get(record.key) if record.key is not None else None
        if fixed is not None and fixed.status == 429:
            limited = self.rate_limited()
            if fixed.retry_after is not None:
                limited.headers["retry-after"] = fixed.retry_after
            return limited
        if fixed is not None:
            return self.unauthorized()
        denied = self.check_auth(record)
        if denied is not None:
            return denied
        return self.route(record)

    @staticmethod
    def _read_body(handler: _PeerRequestHandler) -> bytes:
        length = handler.headers.get("Content-Length")
        if length is not None:
            return handler.rfile.read(int(length))
        if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
            parts: list[bytes] = []
            while True:
                size = int(handler.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                parts.append(handler.rfile.read(size))
                handler.rfile.readline()
        return b""

    def _write(self, handler: _PeerRequestHandler, response: PeerResponse) -> None:
        handler.send_response(response.status)
        handler.send_header("Content-Type", response.content_type)
        for key, value in response.headers.items():
            handler.send_header(key, value)
        if response.events is None:
            handler.send_header("Content-Length", str(len(response.body)))
            handler.end_headers()
            if handler.command != "HEAD":
                handler.wfile.write(response.body)
            return
        handler.send_header("Transfer-Encoding", "chunked")
        handler.send_header("Cache-Control", "no-cache")
        handler.end_headers()
        for chunk in response.events:
            if self.stream_delay > 0:
                self._stopped.wait(self.stream_delay)
            if self._stopped.is_set():
                handler.close_connection = True
                return
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        handler.wfile.write(b"0\r\n\r\n")


# --------------------------------------------------------------------------- standalone mode


def run_standalone(peer_factory: Callable[..., BasePeer], argv: Sequence[str] | None = None) -> int:
    """Command line of ``python -m tests.peers.<provider>_peer``.

    Prints ``READY http://127.0.0.1:PORT`` (flushed) once listening, then serves until
    SIGTERM/SIGINT.
    """
    parser = argparse.ArgumentParser(description="Loopback LLM provider peer (tests only).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY, help="key clients must send")
    parser.add_argument("--no-auth", action="store_true", help="accept any (or no) key")
    parser.add_argument("--models", default=None, help="comma-separated model ids")
    parser.add_argument("--name", default=None)
    parser.add_argument("--embedding-dimensions", type=int, default=8)
    parser.add_argument("--behaviour", choices=BEHAVIOURS, default="ok")
    parser.add_argument("--hang-seconds", type=float, default=30.0)
    parser.add_argument("--redirect-to", default=None, help="Location of behaviour 'redirect'")
    parser.add_argument("--verbose", action="store_true", help="log method/path/status per request")
    args = parser.parse_args(argv)

    options: dict[str, Any] = {
        "api_key": None if args.no_auth else args.api_key,
        "embedding_dimensions": args.embedding_dimensions,
        "host": args.host,
        "port": args.port,
    }
    if args.models is not None:
        options["models"] = [m.strip() for m in args.models.split(",") if m.strip()]
    if args.name is not None:
        options["name"] = args.name
    peer = peer_factory(**options)
    peer.behaviour = args.behaviour
    peer.hang_seconds = args.hang_seconds
    peer.redirect_to = args.redirect_to
    peer.verbose = args.verbose

    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    with peer:
        print(f"READY {peer.root_url}", flush=True)
        while not stop.wait(0.2):
            pass
    return 0


def unix_now() -> int:
    return int(time.time())
