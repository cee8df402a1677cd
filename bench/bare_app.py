"""The yardstick of figure 4: a bare Starlette app answering ``GET /api/v1/llm/config`` with fixed bytes.

It runs on the server stack of ``llmconfig serve`` (the same uvicorn options: uvloop, httptools, access log,
one worker, see ``llmconfig.cli.serve.server_options``), so that what separates the two is llmconfig's own
work per request: authentication, routing, the read snapshot, the metrics, the guards and the headers.

    python -m bench.bare_app --port 8901 --body config.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from llmconfig.cli.serve import server_options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body", type=Path, required=True, help="the bytes to answer with")
    args = parser.parse_args()
    body = args.body.read_bytes()

    async def config(_request: Request) -> Response:
        return Response(body, media_type="application/json")

    app = Starlette(routes=[Route("/api/v1/llm/config", config)])
    uvicorn.run(app, **server_options("127.0.0.1", args.port))


if __name__ == "__main__":
    main()
