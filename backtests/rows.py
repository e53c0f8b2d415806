"""Rows a long run records, kept in compact typed chunks rather than as Python tuples.

A day of tape records hundreds of thousands of top-of-book changes, quote changes, actions, order
rows and signals. As tuples of Python floats each row costs ~150-300 bytes and memory grows with
the tape; here rows are appended to a small list (fast) that is turned into a chunk of typed
columns (8 bytes a number) every `chunk_rows` rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


class RowBuffer:
    def __init__(self, columns: list[str], dtypes: dict[str, str] | None = None, chunk_rows: int = 8192) -> None:
        self.columns = list(columns)
        self.dtypes = dtypes or {}
        self.chunk_rows = chunk_rows
        # Each chunk as its columns, each with an array of its own (see `frame`).
        self._chunks: list[dict[str, pd.Series]] = []
        self._rows: list[tuple] = []
        self._count = 0

    def append(self, row: tuple) -> None:
        self._rows.append(row)
        self._count += 1
        if len(self._rows) >= self.chunk_rows:
            self._chunks.append(self._split(self._rows))
            self._rows = []

    def __len__(self) -> int:
        return self._count

    def _frame(self, rows: list[tuple]) -> pd.DataFrame:
        if not rows:
            frame = pd.DataFrame(rows, columns=self.columns)
        else:  # column by column: pandas infers each column once instead of walking rows
            frame = pd.DataFrame({name: _column(values)
                                  for name, values in zip(self.columns, zip(*rows, strict=True), strict=True)})
        return frame.astype(self.dtypes) if self.dtypes else frame

    def _split(self, rows: list[tuple]) -> dict[str, pd.Series]:
        """The rows' frame as its columns, each copied out of the frame's blocks (a frame keeps
        same-typed columns in one array, which dropping one column would not free)."""
        frame = self._frame(rows)
        return {name: frame[name].copy() for name in self.columns}

    def frame(self) -> pd.DataFrame:
        """Every row so far, in the order appended.

        Where each column has one dtype in every chunk (a recorder's columns do: times, prices,
        ids), the chunks are joined a column at a time, each chunk's column dropped once it is
        copied, and the joined columns become the only chunk, shared with the frame read-only (a
        write into the frame raises rather than changing the record). Joined whole, every chunk
        and the frame would be held at once: twice a day's rows, at the end of a run, when its
        memory peaks. Chunks whose dtypes differ (a column all None in one, numbers in another) are
        joined whole, pandas deciding the dtypes as it always did, and are kept as they were."""
        parts = [*self._chunks, self._split(self._rows)] if self._rows else list(self._chunks)
        if not parts:
            return self._frame([])
        if len(parts) > 1:
            dtypes = [{part[name].dtype for part in parts} for name in self.columns]
            if any(len(kinds) > 1 or not isinstance(next(iter(kinds)), np.dtype) for kinds in dtypes):
                return pd.concat([pd.DataFrame(part) for part in parts], ignore_index=True)
            # The remainder joins them: with one dtype a column, where a chunk was cut changes nothing.
            self._chunks, self._rows = [], []
            joined = {name: pd.Series(np.concatenate([part.pop(name).to_numpy() for part in parts]), name=name)
                      for name in self.columns}
            self._chunks = parts = [joined]
        if self._chunks and parts[0] is self._chunks[0]:  # what the buffer keeps: shared read-only
            for column in parts[0].values():
                column.to_numpy().flags.writeable = False
        return pd.DataFrame(parts[0], copy=False)


# A column of one Python type becomes its numpy array directly: pandas would make an object array
# of it first and then infer the type it already has (most of a chunk's cost). Anything else (None,
# strings, mixed types, ints beyond int64) is left to pandas' inference.
_NUMPY_TYPES = {float: np.float64, int: np.int64, bool: np.bool_}


def _column(values: tuple) -> np.ndarray | list:
    types = set(map(type, values))
    if len(types) == 1 and (dtype := _NUMPY_TYPES.get(types.pop())) is not None:
        try:
            return np.array(values, dtype=dtype)
        except OverflowError:
            pass
    return list(values)
