"""The HTTP load generator of figure 4: ``wrk`` (Debian's package), driven with a Lua script for its figures.

One ``wrk`` thread and ``connections`` keep-alive connections; the script's ``done`` hook prints the count,
the latency percentiles and the errors as JSON, so nothing depends on wrk's human-readable report.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.postgres import BenchError

SCRIPT = """\
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\nRESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, '
    .. '"errors": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""


@dataclass(frozen=True)
class Load:
    """What one run of the load generator measured."""

    requests: int
    seconds: float
    p50: float
    p99: float
    max: float
    errors: int

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds


def executable() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise BenchError("wrk is not installed: run `make system-deps` (Debian's wrk package)")
    return found


def run(url: str, token: str, workdir: Path, *, connections: int = 32, seconds: float = 3.0) -> Load:
    """``GET url`` with a bearer token from ``connections`` connections for ``seconds``."""
    script = workdir / "bench-wrk.lua"
    if not script.exists():
        script.write_text(SCRIPT)
    completed = subprocess.run(
        [executable(), "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s", "-s", str(script), url],
        capture_output=True,
        text=True,
        env={"BENCH_TOKEN": token, "PATH": "/usr/bin:/bin"},
        timeout=seconds + 60,
        check=False,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    if completed.returncode != 0 or not lines:
        raise BenchError(f"wrk failed ({completed.returncode}): {completed.stdout[-500:]} {completed.stderr[-500:]}")
    data = json.loads(lines[-1].removeprefix("RESULT "))
    return Load(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50=data["p50_us"] / 1e6,
        p99=data["p99_us"] / 1e6,
        max=data["max_us"] / 1e6,
        errors=data["errors"],
    )
