"""RowBuffer builds its chunks column by column: the frames must be what pandas makes of the rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
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


def _joined_whole(rows: list[tuple], chunk_rows: int) -> pd.DataFrame:
    """What the buffer gave before it kept its chunks by column: each full chunk framed, then the
    frames and the remainder joined whole (an empty remainder adds nothing)."""
    buffer = RowBuffer(COLUMNS)
    full = len(rows) - len(rows) % chunk_rows
    parts = [buffer._frame(rows[i:i + chunk_rows]) for i in range(0, full, chunk_rows)]
    if full < len(rows) or not parts:
        parts.append(buffer._frame(rows[full:]))
    return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)


def _filled(rows: list[tuple], chunk_rows: int) -> RowBuffer:
    buffer = RowBuffer(COLUMNS, chunk_rows=chunk_rows)
    for row in rows:
        buffer.append(row)
    return buffer


@settings(max_examples=300, deadline=None)
@given(rows=ROWS, chunk_rows=st.integers(1, 8))
def test_every_row_comes_back_in_order_as_the_whole_chunks_joined(rows, chunk_rows):
    """Joined a column at a time (each column one dtype in every chunk) or whole (dtypes that
    differ, say a column all None in one chunk), the frame is the one the chunks joined whole
    gave: same values, dtypes and bytes; and the same again when asked again."""
    buffer = _filled(rows, chunk_rows)
    frame = buffer.frame()
    assert len(buffer) == len(frame) == len(rows)
    assert frame["ts"].tolist() == [row[0] for row in rows]
    want = _joined_whole(rows, chunk_rows)
    pd.testing.assert_frame_equal(frame, want, check_exact=True)
    assert frame.to_parquet(index=False) == want.to_parquet(index=False)
    pd.testing.assert_frame_equal(buffer.frame(), want, check_exact=True)


# A recorder's rows: each column one type throughout.
TYPED_ROWS = st.lists(st.tuples(st.integers(0, 2**62), st.floats(allow_nan=True), st.text(max_size=4), st.booleans(),
                                st.integers(0, 2**64 - 1), st.floats(allow_nan=False)), max_size=40)


@settings(max_examples=200, deadline=None)
@given(rows=TYPED_ROWS, chunk_rows=st.integers(1, 8), split=st.integers(0, 40))
def test_a_frame_taken_midway_stays_as_it_was_and_later_rows_follow(rows, chunk_rows, split):
    """A frame asked for midway (a live session's status) is not changed by later rows, and the
    final frame is still the whole chunks joined."""
    split = min(split, len(rows))
    buffer = _filled(rows[:split], chunk_rows)
    early = buffer.frame()
    before = early.copy()
    for row in rows[split:]:
        buffer.append(row)
    frame = buffer.frame()
    pd.testing.assert_frame_equal(early, before, check_exact=True)
    pd.testing.assert_frame_equal(frame, _joined_whole(rows, chunk_rows), check_exact=True)


def test_a_frame_shares_the_recorded_rows_read_only():
    """The frame is not a second copy of the rows; writing into it fails rather than changing what
    the buffer holds, and a column added to it is its own."""
    buffer = _filled([(i, float(i), "x", True, i, 0.5) for i in range(5)], chunk_rows=2)
    frame = buffer.frame()
    with pytest.raises(ValueError, match="read-only"):
        frame.loc[0, "price"] = 99.0
    frame["doubled"] = frame["price"] * 2
    again = buffer.frame()
    assert again["price"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0] and list(again.columns) == COLUMNS
    assert np.shares_memory(frame["price"].to_numpy(), again["price"].to_numpy())  # one copy of the rows
