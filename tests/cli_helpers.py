"""Running the installed ``llmconfig`` command (and ``python -c``) as real subprocesses, for tests.

Every Python start-up that imports llmconfig costs a second or more of CPU, so independent calls can
be run side by side with :meth:`Cli.many` / :func:`concurrently`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

LLMCONFIG = Path(sys.executable).parent / "llmconfig"

#: Variables of the developer's shell that would change what the command does.
SCRUBBED_PREFIXES = ("LLMCONFIG_", "OPENAI_", "ANTHROPIC_")

# Two cores shared with the other test worker, and every call spends most of its time importing: more
# side by side only thrash.
MAX_PARALLEL = 2

T = TypeVar("T")


@dataclass(frozen=True)
class Result:
    """One finished subprocess."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def json(self) -> Any:
        try:
            return json.loads(self.stdout)
        except json.JSONDecodeError as exc:
            raise AssertionError(f"stdout is not JSON ({exc}):\n{self}") from None

    def __str__(self) -> str:
        return (
            f"$ {' '.join(self.argv)}\n[exit {self.returncode} after {self.seconds:.1f}s]\n"
            f"--- stdout\n{self.stdout}--- stderr\n{self.stderr}--- end"
        )


def concurrently(*calls: Callable[[], T]) -> list[T]:
    """Run the calls in threads (each typically waits on a subprocess); results in call order."""
    with ThreadPoolExecutor(max_workers=max(1, min(MAX_PARALLEL, len(calls)))) as pool:
        futures = [pool.submit(call) for call in calls]
        return [future.result() for future in futures]


class Cli:
    """Runs ``llmconfig`` with a clean environment; remembers every result for leak checks."""

    def __init__(self, *, database_url: str, master_key_file: Path, cwd: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED_PREFIXES)}
        env["LLMCONFIG_DATABASE_URL"] = database_url
        env["LLMCONFIG_MASTER_KEY_FILE"] = str(master_key_file)
        env["COLUMNS"] = "200"  # rich tables: no wrapping or truncation whatever the caller's terminal
        self.env = env
        self.cwd = cwd
        self.results: list[Result] = []

    def run(self, *args: str, env: Mapping[str, str] | None = None, expect: int | None = 0) -> Result:
        """``llmconfig ARGS``; asserts the exit status unless ``expect`` is None."""
        return self._exec((str(LLMCONFIG), *args), env=env, expect=expect)

    def python(self, code: str, *, env: Mapping[str, str] | None = None, expect: int | None = 0) -> Result:
        """``python -c CODE`` with the same environment (application code using the Python API)."""
        return self._exec((sys.executable, "-c", code), env=env, expect=expect)

    def many(self, *argvs: Sequence[str], env: Mapping[str, str] | None = None) -> list[Result]:
        """Several independent ``llmconfig`` calls side by side; exit statuses are left to the caller."""
        return concurrently(*(partial(self.run, *argv, env=env, expect=None) for argv in argvs))

    def _exec(self, argv: tuple[str, ...], *, env: Mapping[str, str] | None, expect: int | None) -> Result:
        started = time.monotonic()
        completed = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            env={**self.env, **(env or {})},
            cwd=self.cwd,
            # Far above what a command takes (a second or two); only a hung command runs into it, on a
            # machine busy enough to slow everything else tenfold.
            timeout=120,
            check=False,
        )
        shown = tuple(Path(a).name if i == 0 else a for i, a in enumerate(argv))
        elapsed = time.monotonic() - started
        result = Result(shown, completed.returncode, completed.stdout, completed.stderr, elapsed)
        self.results.append(result)
        if expect is not None:
            assert result.returncode == expect, f"expected exit {expect}:\n{result}"
        return result


def assert_succeeded(result: Result) -> None:
    assert result.returncode == 0, str(result)
    assert "Traceback" not in result.output, str(result)


def assert_one_line_error(result: Result, *words: str) -> None:
    """Exit status 1, one ``error:`` line on stderr naming what is wrong, no traceback anywhere."""
    assert result.returncode == 1, str(result)
    assert "Traceback" not in result.output, str(result)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected exactly one line on stderr:\n{result}"
    assert lines[0].startswith("error: "), str(result)
    for word in words:
        assert word.lower() in lines[0].lower(), f"{word!r} missing from the error:\n{result}"


def assert_secrets_absent(results: Sequence[Result], secrets: Sequence[str]) -> None:
    for result in results:
        for secret in secrets:
            assert secret not in result.output, f"an API key leaked into the output of {' '.join(result.argv)}"


def stored_bytes(database_url: str) -> bytes:
    """Everything the database holds, as bytes to search: the SQLite files, or every row of every table."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        assert url.database
        main = Path(url.database)
        files = [main, *(main.with_name(main.name + suffix) for suffix in ("-wal", "-shm", "-journal"))]
        return b"".join(path.read_bytes() for path in files if path.exists())
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    chunks: list[str] = []
    with psycopg.connect(conninfo) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
        assert tables, "no tables found in the PostgreSQL database"
        for schema, table in tables:
            chunks.append(f"== {schema}.{table}")
            # A row cast to text renders every column, whatever its type.
            query = sql.SQL("SELECT CAST(t AS text) FROM {} AS t").format(sql.Identifier(schema, table))
            chunks.extend(row[0] for row in conn.execute(query))
    return "\n".join(chunks).encode()


def assert_usage_error(result: Result, option: str, value: str, choices: Sequence[str]) -> None:
    """Typer's usage error for a value outside an option's choices: exit 2, the option, the value, each choice."""
    assert result.returncode == 2, str(result)
    assert "Traceback" not in result.output, str(result)
    assert result.stdout == "", str(result)
    # Typer draws the message in a box; join its lines so that wrapping cannot split a word we look for.
    message = " ".join(line.strip("│ ") for line in result.stderr.splitlines())
    assert f"Invalid value for '{option}'" in message, str(result)
    assert f"'{value}' is not one of" in message, str(result)
    for choice in choices:
        assert f"'{choice}'" in message, str(result)
