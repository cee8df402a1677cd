#!/usr/bin/env bash
# Print the interpreter `make venv` builds the virtual environment with: CPython 3.12 (or 3.13) where the
# machine has one, on the PATH or installed by pyenv, else 3.11. From 3.12 on, coverage measures through
# sys.monitoring (`core = "sysmon"` in pyproject.toml), which adds a few per cent to the test suite's time
# instead of the half that the tracer of 3.11 adds.
set -uo pipefail

pyenv_versions="${PYENV_ROOT:-$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")}/versions"
shopt -s nullglob
for version in 3.12 3.13 3.11; do
    for candidate in "python$version" "$pyenv_versions/$version".*/bin/"python$version"; do
        # A pyenv shim exists for every installed version but fails unless that version is selected.
        if "$candidate" -c "import sys" >/dev/null 2>&1; then
            command -v "$candidate"
            exit 0
        fi
    done
done
command -v python3
