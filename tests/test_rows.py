"""RowBuffer builds its chunks column by column: the frames must be what pandas makes of the rows."""

from __future__ import annotations

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from backtests.rows import RowBuffer

COLUMNS = ["ts", "price", "tag", "flag", "raw", "fill"]
# What a recorder's rows hold: times, floats (NaN, missing), strings, flags.
VALUES = {
    "ts": st.integers(0, 2**62),
    "price": st.one_of(st.none(), st.floats(allow_nan=True), st.integers(-5, 5)),
    "tag": st.one_of(st.none(), st.text(max_size=4)),
    "flag": st.one_of(st.booleans(), st.none()),
    "raw": st.integers(0, 2**64 - 1),  # past int64 (uint64): pandas decides, as it does row-wise
    "fill": st.floats(allow_nan=False),  # often all floats: a numpy column of its own
}
ROWS = st.lists(st.tuples(*(VALUES[c] for c in COLUMNS)), max_size=40)


@settings(max_examples=300, deadline=None)
@given(rows=ROWS)
def test_a_chunk_is_the_frame_pandas_builds_from_the_rows(rows):
    """Column by column, the same columns, values and dtypes as pandas' own row-wise build, down to
    the bytes a run writes (None and NaN kept apart, floats exact)."""
    got, want = RowBuffer(COLUMNS)._frame(rows), pd.DataFrame(rows, columns=COLUMNS)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert got.to_parquet(index=False) == want.to_parquet(index=False)


@given(rows=ROWS, chunk_rows=st.integers(1, 8))
def test_every_row_comes_back_in_order(rows, chunk_rows):
    buffer = RowBuffer(COLUMNS, chunk_rows=chunk_rows)
    for row in rows:
        buffer.append(row)
    frame = buffer.frame()
    assert len(buffer) == len(frame) == len(rows)
    assert frame["ts"].tolist() == [row[0] for row in rows]
