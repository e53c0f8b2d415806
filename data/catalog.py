"""Reading and writing FlashMM tapes in a NautilusTrader ParquetDataCatalog.

A tape is order-book deltas (one batch per block, the last delta of a batch flagged F_LAST) plus
trade ticks. Catalogs are written into a temporary directory and moved into place only when
complete, so a failed write never leaves a half-written catalog behind, and an existing catalog
holding data for the same instrument is refused rather than overwritten.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from nautilus_trader.model.book import OrderBook
from nautilus_trader.model.data import BookOrder, OrderBookDelta, OrderBookDeltas, TradeTick
from nautilus_trader.model.enums import AggressorSide, BookAction, BookType, OrderSide, RecordFlag
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.model.objects import Quantity
from nautilus_trader.persistence.catalog import ParquetDataCatalog

import data.instrument  # noqa: F401  (registers the SEI currency before instruments are read back)
from data.levels import DeltaColumns, PackedColumns

META_FILE = "flashmm_catalog.json"
F_LAST = int(RecordFlag.F_LAST)


class CatalogError(ValueError):
    """A catalog is missing, malformed, or would be overwritten."""


def write_catalog(
    out: Path,
    instrument: Instrument,
    deltas: Iterator[list[OrderBookDelta]] | list[OrderBookDelta],
    trades: list[TradeTick],
    meta: dict[str, Any],
) -> Path:
    """Write a complete tape for one instrument into the catalog at `out`.

    `deltas` may be one list or an iterator of chunks (written as separate files, bounding memory).
    """
    with StagedCatalog(out, instrument) as staged:
        for chunk in [deltas] if isinstance(deltas, list) else deltas:
            staged.append(chunk, [])
        staged.append([], trades)
        return staged.commit(meta)


class StagedCatalog:
    """A catalog written in parts into a hidden staging directory beside `out`, moved into place
    by `commit`; leaving the `with` block without committing removes it. Parts must come in time
    order (a recorder flushing every few minutes), each becoming its own Parquet file."""

    def __init__(self, out: Path, instrument: Instrument) -> None:
        self.out = Path(out)
        self.instrument = instrument
        _refuse_existing(self.out, instrument.id)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.staging = Path(tempfile.mkdtemp(prefix=".flashmm-staging-", dir=self.out.parent))
        self.staging.chmod(0o755)  # mkdtemp's 0700 would become the catalog's permissions
        self._catalog = ParquetDataCatalog(str(self.staging))
        self._catalog.write_data([instrument])
        self.deltas = self.trades = 0

    def __enter__(self) -> StagedCatalog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Remove the staging directory (empty after a commit)."""
        shutil.rmtree(self.staging, ignore_errors=True)

    def append(self, deltas: list[OrderBookDelta], trades: list[TradeTick]) -> None:
        if deltas:
            self._catalog.write_data(deltas)
            self.deltas += len(deltas)
        if trades:
            self._catalog.write_data(trades)
            self.trades += len(trades)

    def commit(self, meta: dict[str, Any]) -> Path:
        _refuse_existing(self.out, self.instrument.id)  # again: a recording takes hours
        meta = dict(meta, instrument_id=str(self.instrument.id), deltas=self.deltas, trades=self.trades)
        (self.staging / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        _move_into_place(self.staging, self.out)
        return self.out


def _refuse_existing(out: Path, instrument_id: InstrumentId) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise CatalogError(f"--out {out} exists and is not a directory")
    if (out / META_FILE).exists() or any(out.glob(f"data/*/{_catalog_key(instrument_id)}")):
        raise CatalogError(
            f"{out} already holds data for {instrument_id}; choose another --out or remove it first"
        )


def _catalog_key(instrument_id: InstrumentId) -> str:
    return str(instrument_id).replace("/", "")


def _move_into_place(staging: Path, out: Path) -> None:
    if not out.exists():
        staging.rename(out)
        staging.mkdir()  # so the caller's cleanup finds what it expects
        return
    for src in sorted(staging.rglob("*")):
        if src.is_file():
            dst = out / src.relative_to(staging)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(src), str(dst))


@dataclass(frozen=True)
class Tape:
    """A catalog opened for replay."""

    path: Path
    catalog: ParquetDataCatalog
    instrument: Instrument
    meta: dict[str, Any]
    start_ns: int
    end_ns: int
    _deltas: _RowGroups | None = field(default=None, repr=False, compare=False)  # opened on first use

    def parts(
        self,
        start_ns: int | None = None,
        end_ns: int | None = None,
        chunk_ns: int = 15 * 60 * 1_000_000_000,
        columns: bool = False,
        first_chunk_ns: int | None = None,
    ) -> Iterator[tuple]:
        """Yield the tape window chunk by chunk as (book batches, trades), each in time order.

        Deltas are grouped into `OrderBookDeltas` batches ending at each F_LAST delta. With
        `columns`, each chunk also comes with its batches' `DeltaColumns`, read from the catalog's
        Arrow files (None for a chunk whose rows could not be matched to its batches one to one).
        `first_chunk_ns` makes the first chunk that long (a consumer that works a chunk ahead
        waits for the first one alone); every later chunk is `chunk_ns` long.
        """
        lo = self.start_ns if start_ns is None else max(start_ns, self.start_ns)
        hi = self.end_ns if end_ns is None else min(end_ns, self.end_ns)
        ident = [str(self.instrument.id)]
        seed = [self.snapshot(lo - 1)] if lo > self.start_ns else []
        t = lo
        span = chunk_ns if first_chunk_ns is None else first_chunk_ns
        while t <= hi:
            t_end = min(t + span - 1, hi)
            span = chunk_ns
            deltas = self.catalog.query(OrderBookDelta, identifiers=ident, start=t, end=t_end)
            trades = self.catalog.query(TradeTick, identifiers=ident, start=t, end=t_end)
            # A time-filtered query sorts by ts_init only and is not stable across parquet row
            # groups: restore the written order of same-timestamp records. Deltas carry their
            # sequence; a block's prints are put in the order a sweep walks the book.
            deltas.sort(key=_DELTA_ORDER)
            trades.sort(key=_trade_order)
            if deltas or trades or seed:
                if not columns:
                    yield seed + batch_deltas(deltas), trades
                else:
                    batches, cols = self._columns(t, t_end, deltas)
                    if cols is not None and seed:
                        cols.extend(DeltaColumns.of_batches(seed))
                    yield seed + batches, trades, cols
                seed = []
            t = t_end + 1

    def _columns(
        self, t: int, t_end: int, deltas: list[OrderBookDelta]
    ) -> tuple[list[OrderBookDeltas], DeltaColumns | None]:
        """The chunk's book batches (`deltas` stamped in [t, t_end], in (ts_init, sequence) order)
        and the same deltas as columns, read from the catalog's Arrow files; the columns are None
        (and the batches grouped from the objects, `batch_deltas`) unless the rows match the
        objects one to one: the same count, no two with the same time and sequence, and each
        batch's last object at its row's time and sequence.

        The batches are cut where the rows' flags say F_LAST, which reads one flag column instead
        of every object's flags (both are the same rows, in the same order)."""
        if self._deltas is None:
            key = str(self.instrument.id).replace("/", "")
            files = sorted((self.path / "data" / "order_book_delta" / key).glob("*.parquet"))
            object.__setattr__(self, "_deltas", _RowGroups(files))
        n_deltas = len(deltas)
        if not deltas:
            return [], None
        table = self._deltas.read(t, t_end)
        if table.num_rows != n_deltas or any(table.schema.field(name).type != _RAW_TYPE for name in ("price", "size")):
            return batch_deltas(deltas), None  # not these deltas, or values not in the 16-byte raw form read below
        ts = table.column("ts_init").to_numpy()
        seq = table.column("sequence").to_numpy()
        order = np.lexsort((seq, ts))
        ts, seq = ts[order], seq[order]
        if n_deltas > 1 and np.any((ts[1:] == ts[:-1]) & (seq[1:] == seq[:-1])):
            return batch_deltas(deltas), None
        flags = table.column("flags").to_numpy()[order]
        ends = (np.flatnonzero(flags & F_LAST) + 1).tolist()
        if not ends or ends[-1] != n_deltas:
            return batch_deltas(deltas), None  # deltas after the last F_LAST: batch_deltas says where
        lasts = [deltas[end - 1] for end in ends]
        if ([d.ts_init for d in lasts] != ts[np.subtract(ends, 1)].tolist()
                or [d.sequence for d in lasts] != seq[np.subtract(ends, 1)].tolist()):
            return batch_deltas(deltas), None
        iid = self.instrument.id
        batches = [OrderBookDeltas(iid, deltas[start:end]) for start, end in zip([0, *ends[:-1]], ends, strict=True)]
        cols = DeltaColumns.of_packed(PackedColumns(
            table.column("action").to_numpy()[order], table.column("side").to_numpy()[order],
            _words(table.column("price"), order), _words(table.column("size"), order)))
        start = 0
        for batch, end in zip(batches, ends, strict=True):
            cols.place(batch, start, end)
            start = end
        return batches, cols

    def snapshot(self, ts_ns: int) -> OrderBookDeltas:
        """The book as it stood at `ts_ns`, as one CLEAR + ADD batch stamped `ts_ns`.

        A window that starts inside a tape needs it: the deltas after the window start only make
        sense applied to the book the tape had built by then.
        """
        book = OrderBook(self.instrument.id, BookType.L2_MBP)
        for batches, _ in self.parts(self.start_ns, ts_ns):
            for batch in batches:
                book.apply_deltas(batch)
        iid, precision = self.instrument.id, self.instrument.size_precision
        deltas = [OrderBookDelta.clear(iid, 0, ts_ns, ts_ns)]
        for side, levels in ((OrderSide.BUY, book.bids()), (OrderSide.SELL, book.asks())):
            for level in levels:
                order = BookOrder(side, level.price, Quantity(level.size(), precision), 0)
                deltas.append(OrderBookDelta(iid, BookAction.ADD, order, 0, 0, ts_ns, ts_ns))
        last = deltas[-1]
        deltas[-1] = OrderBookDelta(iid, last.action, last.order, F_LAST, 0, ts_ns, ts_ns)
        return OrderBookDeltas(iid, deltas)

    def chunks(
        self, start_ns: int | None = None, end_ns: int | None = None
    ) -> Iterator[list[OrderBookDeltas | TradeTick]]:
        """Yield the tape as one time-ordered stream per chunk (see `merge_stream`)."""
        for batches, trades in self.parts(start_ns, end_ns):
            yield merge_stream(batches, trades)



_DELTA_ORDER = attrgetter("ts_init", "sequence")  # C-level key: a tape has millions of deltas


def _trade_order(trade: TradeTick) -> tuple[int, int, float]:
    px = float(trade.price)
    return trade.ts_init, int(trade.aggressor_side), px if trade.aggressor_side == AggressorSide.BUYER else -px


_DELTA_COLUMNS = ["action", "side", "price", "size", "flags", "sequence", "ts_init"]
_RAW_TYPE = pa.binary(16)  # NautilusTrader's high-precision fixed-point values, as 1.221 writes them


class _RowGroups:
    """A tape's delta files, read for a time window by the row groups whose ts_init range meets it
    (their Parquet statistics), then cut to the window: a 15-minute chunk reads ~15 minutes of
    rows, not every file's footer and filter."""

    def __init__(self, paths: list[Path]) -> None:
        self.groups: list[tuple[int, int, pq.ParquetFile, int]] = []  # ts_init min, max, file, index
        for path in paths:
            parquet = pq.ParquetFile(path)
            meta = parquet.metadata
            ts_col = meta.schema.to_arrow_schema().get_field_index("ts_init")
            for i in range(meta.num_row_groups):
                stats = meta.row_group(i).column(ts_col).statistics
                lo, hi = (stats.min, stats.max) if stats is not None and stats.has_min_max else (0, 2**64)
                self.groups.append((lo, hi, parquet, i))

    def read(self, t: int, t_end: int) -> pa.Table:
        """The rows stamped in [t, t_end], in file order."""
        parts = [parquet.read_row_group(i, columns=_DELTA_COLUMNS, use_threads=False)
                 for lo, hi, parquet, i in self.groups if hi >= t and lo <= t_end]
        if not parts:
            return pa.table({name: [] for name in _DELTA_COLUMNS})
        table = pa.concat_tables(parts).combine_chunks()
        ts = table.column("ts_init").to_numpy()
        return table.take(np.flatnonzero((ts >= t) & (ts <= t_end)))


def _words(column: pa.ChunkedArray, order: np.ndarray) -> np.ndarray:
    """NautilusTrader's raw fixed-point values (16-byte little-endian signed integers) as rows of
    two 64-bit words (low, high), in `order` (see `PackedColumns`)."""
    array = column.combine_chunks()
    return np.frombuffer(array.buffers()[1], dtype="<u8", count=2 * len(array),
                         offset=16 * array.offset).reshape(-1, 2)[order]


def batch_deltas(deltas: list[OrderBookDelta]) -> list[OrderBookDeltas]:
    """Group deltas into batches, each ending at a delta flagged F_LAST."""
    batches: list[OrderBookDeltas] = []
    pending: list[OrderBookDelta] = []
    for delta in deltas:
        pending.append(delta)
        if delta.flags & F_LAST:
            batches.append(OrderBookDeltas(delta.instrument_id, pending))
            pending = []
    if pending:
        raise CatalogError(
            f"{len(pending)} deltas after the last F_LAST flag at ts={pending[-1].ts_event}: "
            "every block's batch must end with a delta flagged F_LAST"
        )
    return batches


def merge_stream(
    batches: list[OrderBookDeltas], trades: list[TradeTick]
) -> list[OrderBookDeltas | TradeTick]:
    """Merge by ts_init; on ties trades first: a block's prints happened before the block's
    resulting book state was published."""
    keyed = [(t.ts_init, 0, i, t) for i, t in enumerate(trades)]
    keyed += [(b.ts_init, 1, i, b) for i, b in enumerate(batches)]
    keyed.sort(key=lambda k: k[:3])
    return [k[3] for k in keyed]


def open_tape(path: str | Path, instrument_id: str | None = None) -> Tape:
    """Open a catalog for replay, with a clear error when it is not a usable FlashMM tape."""
    path = Path(path)
    if not path.is_dir():
        raise CatalogError(f"catalog {path} does not exist or is not a directory")
    catalog = ParquetDataCatalog(str(path))
    instruments = catalog.instruments()
    if not instruments:
        raise CatalogError(f"catalog {path} holds no instrument definition")
    if instrument_id is None:
        if len(instruments) > 1:
            ids = ", ".join(sorted(str(i.id) for i in instruments))
            raise CatalogError(f"catalog {path} holds several instruments ({ids}); name one")
        instrument = instruments[0]
    else:
        found = [i for i in instruments if str(i.id) == instrument_id]
        if not found:
            raise CatalogError(f"catalog {path} has no instrument {instrument_id}")
        instrument = found[0]
    meta_path = path / META_FILE
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    ident = [str(instrument.id)]
    intervals = catalog.get_intervals(OrderBookDelta, ident[0])
    if not intervals:
        raise CatalogError(f"catalog {path} has no order-book deltas for {instrument.id}")
    # The window spans the trades too: a print after the last book batch is still replayed.
    intervals += catalog.get_intervals(TradeTick, ident[0])
    return Tape(path, catalog, instrument, meta, int(min(i[0] for i in intervals)), int(max(i[1] for i in intervals)))


def parse_time(value: str | int | None, tape: Tape, name: str) -> int | None:
    """Parse a window bound: ISO time, or an offset like '+30min' from the tape start."""
    if value is None or value == "":
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip()
    try:
        if text.startswith("+"):
            return tape.start_ns + int(pd.Timedelta(text[1:]).value)
        ts = pd.Timestamp(text)
        return int((ts.tz_localize("UTC") if ts.tzinfo is None else ts).value)
    except (ValueError, TypeError) as exc:
        raise CatalogError(f"{name} = {value!r} is neither an ISO time nor an offset like '+30min'") from exc


def iso_utc(ns: int) -> str:
    """A UNIX-nanosecond time as the ISO text run files and reports carry."""
    return pd.Timestamp(int(ns), unit="ns", tz="UTC").isoformat()
