"""The calibration table (data/calibration.toml, docs/calibration.md) against the model.

Every row's "after" value is recomputed from the packaged parameters; it must equal the recorded
value (the table cannot drift from the model) and be inside its published range, or be listed as
outside with the reason.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from openitb.errors import InvalidInput
from openitb.physiology import calibration as physiology_rows
from openitb.physiology.calibration import load_rows, markdown_table
from openitb.sim import fleet_calibration as fleet_rows

ROWS = load_rows()
DOCS = Path(__file__).resolve().parents[3] / "docs" / "calibration.md"


def _compute(row_id: str) -> float:
    if row_id in physiology_rows.MEASURES:
        return physiology_rows.compute(row_id)
    return fleet_rows.compute(row_id)


def test_every_row_has_a_measure_and_every_measure_a_row() -> None:
    ids = [r.id for r in ROWS]
    assert len(ids) == len(set(ids))
    assert set(ids) == set(physiology_rows.MEASURES) | set(fleet_rows.MEASURES)


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_row_value_is_the_model_s_and_inside_its_published_range_or_listed_outside(row) -> None:  # type: ignore[no-untyped-def]
    value = _compute(row.id)
    assert math.isfinite(value), f"{row.id}: the model gives {value}"
    assert value == pytest.approx(row.after, rel=1e-3), (
        f"{row.id}: the model now gives {value:.4g}, the table says {row.after} "
        "(update data/calibration.toml and docs/calibration.md)")
    if row.status == "inside":
        assert row.inside(value), f"{row.id}: {value:.4g} outside {row.low}-{row.high}"
    else:
        assert not row.inside(value) and row.reason


def test_docs_show_the_table_as_the_data_file_has_it() -> None:
    assert markdown_table(ROWS) in DOCS.read_text(encoding="utf-8")


def test_a_row_outside_without_a_reason_is_refused() -> None:
    text = """[[row]]
id = "x"
measure = "m"
published = "p"
low = 0
high = 1
unit = "h"
source = "s"
before = "1"
after = 2
status = "outside"
command = "c"
"""
    with pytest.raises(InvalidInput, match="status"):
        load_rows(text)
    with pytest.raises(InvalidInput, match="low"):
        load_rows(text.replace("low = 0", "low = 3").replace('status = "outside"',
                                                             'status = "inside"'))
