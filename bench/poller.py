"""A library process for the propagation figure: polls ``get_llm(TYPE).model_name`` and reports changes.

Prints ``READY <model>`` once the first resolution is done, then ``SEEN <time.time()> <model>`` the
first time it sees each new model. Runs until SIGTERM, or until its parent goes away.

Settings come from the environment (``LLMCONFIG_DATABASE_URL``, ``LLMCONFIG_MASTER_KEY``, ...), exactly
as an agent process using ``llmconfig.get_llm`` would get them.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from types import FrameType


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--type", default="reasoning")
    parser.add_argument(
        "--interval", type=float, default=0.001, help="seconds between polls (0 = busy loop, starves small machines)"
    )
    args = parser.parse_args()

    import llmconfig

    stopping = False

    def _stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    parent = os.getppid()
    last = llmconfig.get_llm(args.type).model_name  # type: ignore[attr-defined]
    print(f"READY {last}", flush=True)
    polls = 0
    while not stopping:
        model = llmconfig.get_llm(args.type).model_name  # type: ignore[attr-defined]
        if model != last:
            seen = time.time()
            print(f"SEEN {seen:.6f} {model}", flush=True)
            last = model
        polls += 1
        if polls % 1000 == 0 and os.getppid() != parent:
            break
        if args.interval:
            time.sleep(args.interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
