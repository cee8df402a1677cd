"""A throwaway PostgreSQL server: Debian's binaries, a temporary directory, a free loopback port.

Used by the test session (tests/conftest.py), by the outage test that stops and restarts its own server,
and by the benchmarks (bench/). It does not depend on pytest.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

SERVER_OPTIONS = "-c fsync=off -c full_page_writes=off -c max_connections=200"
# A commit that returns before its WAL is written is lost when the server is killed (`stop` is an immediate
# shutdown, as a crash): fine for a server nobody restarts, wrong for one that is restarted and read again.
FAST_COMMITS = "-c synchronous_commit=off"


class PostgresServerError(RuntimeError):
    """The server binaries are missing or the server did not start; the message says what to do."""


# Ports handed out during this test run, shared by the parallel workers (they share PYTEST_XDIST_TESTRUNUID):
# a server stopped and started again on its port (the outage tests) must not find another worker's server
# there in between.
_HANDED_OUT = (
    Path(tempfile.gettempdir()) / f"llmconfig-test-ports-{os.environ.get('PYTEST_XDIST_TESTRUNUID', os.getpid())}"
)


def free_tcp_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, and that no other test of this run got."""
    _HANDED_OUT.mkdir(exist_ok=True)
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        try:
            os.close(os.open(_HANDED_OUT / str(port), os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            continue
        return port


def bin_dir() -> Path:
    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", path.parent.parent.name)) or (0,)

    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=version)
    if not candidates or not (candidates[-1].parent / "pg_ctl").exists():
        raise PostgresServerError(
            "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin. Run `make test` (it installs "
            "Debian's postgresql package), or set LLMCONFIG_TEST_POSTGRES_URL to a server."
        )
    return candidates[-1].parent


def as_server_user(command: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root; drop to the ``postgres`` system user in that case."""
    if os.geteuid() != 0:
        return command
    if shutil.which("runuser"):
        return ["runuser", "-u", "postgres", "--", *command]
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--", *command]


def _run(command: list[str], *, what: str, log: Path | None = None) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    if result.returncode != 0:
        server_log = log.read_text(errors="replace")[-4000:] if log and log.exists() else ""
        raise PostgresServerError(
            f"{what} failed (exit {result.returncode}): {' '.join(command)}\n"
            f"{result.stdout}\n{result.stderr}\n{server_log}"
        )


class PostgresServer:
    """One cluster in a temporary directory; durability is off, since nothing in it is worth keeping.

    `restartable` keeps commits durable across `stop` and `start` (an outage): without it, what was committed
    in the last few hundred milliseconds before a stop can be gone after the start.
    """

    def __init__(self, prefix: str = "llmconfig-pg-", *, restartable: bool = False) -> None:
        self.bin = bin_dir()
        self.options = SERVER_OPTIONS if restartable else f"{SERVER_OPTIONS} {FAST_COMMITS}"
        self.workdir = Path(tempfile.mkdtemp(prefix=prefix))
        self.data = self.workdir / "data"
        self.log = self.workdir / "server.log"
        if os.geteuid() == 0:
            shutil.chown(self.workdir, user="postgres", group="postgres")
        self.port = free_tcp_port()
        _run(
            as_server_user(
                [str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8"]
            ),
            what="initdb",
        )

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.workdir} " + self.options
        )
        _run(
            as_server_user(
                [
                    str(self.bin / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.log),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "60",
                    "start",
                ]
            ),
            what="pg_ctl start",
            log=self.log,
        )

    def stop(self) -> None:
        subprocess.run(
            as_server_user([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"]),
            capture_output=True,
            check=False,
            timeout=60,
        )

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        try:
            self.start()
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.remove()
