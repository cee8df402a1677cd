"""An agent process for tests: reads one command per line on stdin, answers one JSON line on stdout.

It is started by the tests as a separate interpreter with only the environment they give it (in client mode:
``LLMCONFIG_SERVER_URL`` and ``LLMCONFIG_TOKEN``, no database URL, no master key), so that what it can do
is what a real agent process on another host could do.

Commands (arguments separated by spaces; ``-`` stands for "no user"):

    invoke TYPE USER            the answer of get_llm(TYPE, user_id=USER).invoke("hi")
    ainvoke TYPE USER           the same through aget_llm and ainvoke
    model TYPE USER             the model name get_llm(TYPE, user_id=USER) would call
    wait-model TYPE MODEL SECS  poll get_llm(TYPE) until its model is MODEL: the milliseconds it took, or null
    wait-user-model TYPE USER MODEL SECS   the same for get_llm(TYPE, user_id=USER)
    embed                       the length of get_embeddings().embed_query("hi")
    agent                       one create_agent turn through get_llm("tools"), with one tool
    modules                     the database drivers and key stores this process imported
    flush                       wait until the usage recorded so far is posted
    quit
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import traceback
from typing import Any

import llmconfig


def _user(text: str) -> str | None:
    return None if text == "-" else text


def _model_name(llm: Any) -> str:
    return str(getattr(llm, "model_name", None) or getattr(llm, "model", ""))


def _run(command: str, args: list[str]) -> Any:
    if command == "invoke":
        return llmconfig.get_llm(args[0], user_id=_user(args[1])).invoke("hi").content
    if command == "ainvoke":

        async def call() -> Any:
            llm = await llmconfig.aget_llm(args[0], user_id=_user(args[1]))
            return (await llm.ainvoke("hi")).content

        return asyncio.run(call())
    if command == "model":
        return _model_name(llmconfig.get_llm(args[0], user_id=_user(args[1])))
    if command in ("wait-model", "wait-user-model"):
        interaction_type, user, model, seconds = args if command == "wait-user-model" else (args[0], "-", *args[1:])
        started = time.perf_counter()
        deadline = started + float(seconds)
        while time.perf_counter() < deadline:
            if _model_name(llmconfig.get_llm(interaction_type, user_id=_user(user))) == model:
                return (time.perf_counter() - started) * 1000
            time.sleep(0.001)
        return None
    if command == "embed":
        return len(llmconfig.get_embeddings().embed_query("hi"))
    if command == "agent":
        from langchain.agents import create_agent
        from langchain_core.tools import tool

        @tool
        def get_weather(city: str) -> str:
            """Return the weather of a city."""
            return f"It is sunny in {city}"

        agent = create_agent(llmconfig.get_llm("tools"), tools=[get_weather])
        result = agent.invoke({"messages": [{"role": "user", "content": "weather in Oslo?"}]})
        return [type(message).__name__ for message in result["messages"]]
    if command == "modules":
        watched = ("psycopg", "sqlite3", "_sqlite3", "boto3")
        return sorted(name for name in watched if name in sys.modules)
    if command == "flush":
        return llmconfig.llm.default_service().flush_usage()
    raise ValueError(f"unknown command {command!r}")


def main() -> None:
    for line in sys.stdin:
        command, *args = line.split()
        if command == "quit":
            break
        try:
            answer: dict[str, Any] = {"ok": True, "value": _run(command, args)}
        except Exception as exc:
            answer = {"ok": False, "error": type(exc).__name__, "message": str(exc), "trace": traceback.format_exc()}
        print(json.dumps(answer), flush=True)
    llmconfig.reset_default_service()


if __name__ == "__main__":
    main()
