"""`make bench`: one run measures llmconfig's performance figures and writes docs/benchmarks.md.

Everything is measured in the run (nothing is typed in): see :mod:`bench.run` for the figures and
their targets. The bench starts its own PostgreSQL, `llmconfig serve` replicas, library processes and
loopback provider peers, on loopback only, and stops all of them when it ends, even on failure.
"""
