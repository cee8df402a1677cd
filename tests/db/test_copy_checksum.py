"""The per-table checksum of ``db copy``: blind to row order and to how a backend stores a value, not to values."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

from llmconfig.db.engine import create_db_engine
from llmconfig.db.models import UsageRecord
from llmconfig.db_copy import table_checksum

TABLE = UsageRecord.__table__
AT = datetime(2025, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)


def row(id_: int, **changes: object) -> dict[str, object]:
    values: dict[str, object] = {
        "id": id_,
        "at": AT,
        "interaction_type": "reasoning",
        "user_id": None,
        "provider_id": "p",
        "provider_name": "local",
        "model_name": "gpt-4o",
        "prompt_tokens": 3,
        "completion_tokens": 4,
        "latency_ms": 0.1,
        "success": True,
        "error_class": None,
        "cost_usd": None,
    }
    values.update(changes)
    return values


def checksum_of(path: Path, rows: list[dict[str, object]]) -> tuple[int, str]:
    engine = create_db_engine(f"sqlite:///{path}")
    TABLE.create(engine)
    with engine.begin() as connection:
        connection.execute(TABLE.insert(), rows)
    with engine.connect() as connection:
        copied = table_checksum(connection, TABLE, batch_size=2)
    engine.dispose()
    return copied.rows, copied.checksum


def test_checksum_ignores_the_order_rows_were_written_in(tmp_path: Path) -> None:
    # That SQLite and PostgreSQL agree on the same values is pinned by tests/test_cli_db_copy.py, which
    # computes this checksum on both sides of a copy in each direction.
    rows = [row(1), row(2, success=False, error_class="Timeout"), row(3, user_id="u-1")]
    reordered = [rows[2], rows[0], rows[1]]

    assert checksum_of(tmp_path / "a.db", rows) == checksum_of(tmp_path / "b.db", reordered)


def test_checksum_changes_with_any_single_value(tmp_path: Path) -> None:
    rows = [row(1), row(2)]
    base = checksum_of(tmp_path / "base.db", rows)
    variants = {
        "a float by one ulp": row(2, latency_ms=math.nextafter(0.1, 1)),
        "a boolean": row(2, success=False),
        "a timestamp by a microsecond": row(2, at=AT + timedelta(microseconds=1)),
        "NULL for a string": row(2, provider_id=None),
    }
    for number, (what, changed) in enumerate(variants.items()):
        assert checksum_of(tmp_path / f"v{number}.db", [rows[0], changed]) != base, what
