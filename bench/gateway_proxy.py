"""The yardstick of the gateway figures: a bare pass-through proxy, Starlette forwarding with aiohttp.

It does what any Python gateway must do at the least (read the body, POST it upstream on a pooled
connection, hand the answer or the stream back) and nothing else: no authentication, no resolution, no
parsing, no usage records. Served by the same uvicorn as ``llmconfig serve``:
``BENCH_UPSTREAM=http://127.0.0.1:PORT uvicorn bench.gateway_proxy:app``; ``POST /{prefix}/v1/...`` goes to
``$BENCH_UPSTREAM/{prefix}/v1/...``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

UPSTREAM = os.environ.get("BENCH_UPSTREAM", "http://127.0.0.1:8080")
_session: dict[str, aiohttp.ClientSession] = {}


@asynccontextmanager
async def lifespan(_app: Any) -> AsyncIterator[None]:
    connector = aiohttp.TCPConnector(limit=1000, keepalive_timeout=5.0)
    _session["session"] = aiohttp.ClientSession(connector=connector, trust_env=False)
    yield
    await _session["session"].close()


async def forward(request: Request) -> Response:
    body = await request.body()
    response = await _session["session"].post(
        UPSTREAM + request.url.path, data=body, headers={"Content-Type": "application/json"}
    )
    if response.content_type == "text/event-stream":

        async def relay() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.content.iter_any():
                    yield chunk
            finally:
                response.release()

        return StreamingResponse(relay(), status_code=response.status, media_type="text/event-stream")
    data = await response.read()
    response.release()
    return Response(data, status_code=response.status, media_type=response.content_type)


app = Starlette(routes=[Route("/{path:path}", forward, methods=["POST"])], lifespan=lifespan)
