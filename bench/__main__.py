"""``python -m bench``: run every benchmark, print the table, write docs/benchmarks.md."""

import sys

from bench.run import main

sys.exit(main())
