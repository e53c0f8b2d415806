"""Rows a long run records, kept in compact typed chunks rather than as Python tuples.

A day of tape records hundreds of thousands of top-of-book changes, quote changes, actions, order
rows and signals. As tuples of Python floats each row costs ~150-300 bytes and memory grows with
the tape; here rows are appended to a small list (fast) that is turned into a DataFrame chunk of
8-byte columns every `chunk_rows` rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


class RowBuffer:
    def __init__(self, columns: list[str], dtypes: dict[str, str] | None = None, chunk_rows: int = 8192) -> None:
        self.columns = list(columns)
        self.dtypes = dtypes or {}
        self.chunk_rows = chunk_rows
        self._chunks: list[pd.DataFrame] = []
        self._rows: list[tuple] = []
        self._count = 0

    def append(self, row: tuple) -> None:
        self._rows.append(row)
        self._count += 1
        if len(self._rows) >= self.chunk_rows:
            self._chunks.append(self._frame(self._rows))
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

    def frame(self) -> pd.DataFrame:
        """Every row so far, in the order appended."""
        parts = [*self._chunks, self._frame(self._rows)]
        if len(parts) == 1:
            return parts[0]
        return pd.concat(parts, ignore_index=True)


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
