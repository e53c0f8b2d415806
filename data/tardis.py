"""Import real L2 market data recorded by Tardis (tardis.dev CSV datasets) into a FlashMM tape.

Two Tardis datasets are read: ``incremental_book_L2`` (level changes, with full snapshots marked
``is_snapshot=true``) and ``trades``. Both may be plain CSV or gzip-compressed (detected from the
file's magic bytes, not its name). Timestamps are integer microseconds since the epoch.

Everything is parsed and validated before anything is written, so a malformed file never leaves
a partial catalog behind: ``out`` is either written completely by `write_catalog` or untouched.
The price of that guarantee is memory: parsed objects are held until the write, about half a
kilobyte per book row (measured: ~100 MB for 224k deltas, ~70k rows/s). A liquid pair's full day
can be tens of millions of rows; cut such files into shorter windows before importing.

A batch is what arrived together: a run of rows that share an exchange ``timestamp`` (one exchange
message: Tardis stamps every level change of a message with the message's timestamp) or a
``local_timestamp`` (received in the same instant, which the engine cannot split either). A new
batch starts only where both change, so an exchange message is never cut in two and the batches
are the same whichever clock the file's ``timestamp`` column holds. Applying a batch at once is what
publishes one consistent book state. Choices worth knowing:

* A snapshot run (``is_snapshot=true`` rows following non-snapshot rows, or at the start) begins
  with a CLEAR delta, so levels absent from the new snapshot cannot survive it.
* ``amount == 0`` for a price the book does not hold is skipped rather than emitted as a DELETE.
  Such rows appear when an exchange's snapshot is shallower than its update stream. NautilusTrader's
  L2 book ignores them anyway (deleting a missing level is a no-op there, checked on 1.221.0), so
  skipping keeps the tape to real state changes and its delta count meaningful. They are counted
  in the summary as ``skipped_deletes``.
* A non-zero amount is an UPDATE when the side already holds that price and an ADD otherwise,
  tracked with a local price set per side, so the tape reads the same to any consumer that does
  distinguish the two.
* A batch that leaves the book crossed (best bid at or above best ask) is refused, naming its last
  row: a backtest on it would quote against a book no venue ever showed. ``allow_crossed`` imports
  it anyway and records how many batches were crossed in the catalog's metadata.
* Every trade is replayed, including trades before the first or after the last book batch: the
  tape's window spans both.
"""

from __future__ import annotations

import csv
import gzip
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

from nautilus_trader.model.data import BookOrder, OrderBookDelta, TradeTick
from nautilus_trader.model.enums import AggressorSide, BookAction, OrderSide, RecordFlag
from nautilus_trader.model.identifiers import InstrumentId, TradeId
from nautilus_trader.model.objects import Price, Quantity

from data.catalog import write_catalog
from data.instrument import currency_pair
from data.venues import venue_profile

BOOK_COLUMNS = ("exchange", "symbol", "timestamp", "local_timestamp", "is_snapshot", "side", "price", "amount")
TRADE_COLUMNS = ("exchange", "symbol", "timestamp", "local_timestamp", "id", "side", "price", "amount")

F_LAST = int(RecordFlag.F_LAST)
_BOOK_SIDES = {"bid": OrderSide.BUY, "ask": OrderSide.SELL}
_AGGRESSORS = {
    "buy": AggressorSide.BUYER,
    "sell": AggressorSide.SELLER,
    "unknown": AggressorSide.NO_AGGRESSOR,
    "": AggressorSide.NO_AGGRESSOR,
}
_SNAPSHOT_FLAGS = {"true": True, "false": False}
_INTEGER = re.compile(r"[0-9]+")
# Plain or scientific decimals as Tardis writes them; the exponent is bounded so that absurd input
# fails here rather than deep inside the decimal module.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,4})?")
_NOT_FINITE = {"nan", "snan", "inf", "infinity"}
# Nanosecond timestamps are uint64 in NautilusTrader.
_MAX_MICROS = (2**64 - 1) // 1000
# NautilusTrader's TradeId holds 1-36 ASCII characters; the Rust core aborts the whole process on
# non-ASCII or NUL instead of raising, so anything else is replaced before it gets there.
_TRADE_ID = re.compile(r"[!-~][ -~]{0,35}")
_GZIP_MAGIC = b"\x1f\x8b"


class TardisFormatError(ValueError):
    """A Tardis CSV that cannot be imported, located precisely enough to fix or report upstream."""

    def __init__(self, file: Path | str, line: int, field: str | None, problem: str) -> None:
        self.file, self.line, self.field, self.problem = str(file), line, field, problem
        where = f"{self.file} line {line}" + (f", field {field!r}" if field is not None else "")
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class _Row:
    line: int
    fields: dict[str, str]
    ts_event: int


@dataclass(frozen=True)
class _BookRow:
    line: int
    ts_event: int
    local_ns: int
    is_snapshot: bool
    side: OrderSide
    price: Price
    size: Quantity


class _Reader:
    """Validates what every Tardis CSV shares: header, shape, venue identity and timestamps."""

    def __init__(self, path: Path, columns: tuple[str, ...], like: _Reader | None = None) -> None:
        """`like`: an already read file whose exchange and symbol this one must match."""
        self.path = Path(path)
        self.columns = columns
        self.exchange = like.exchange if like else None
        self.symbol = like.symbol if like else None
        self._identity_source = f"the book file {like.path}" if like else "earlier rows"
        self._last_ts = -1

    def error(self, line: int, field: str | None, problem: str) -> TardisFormatError:
        return TardisFormatError(self.path, line, field, problem)

    def rows(self) -> Iterator[_Row]:
        with self.path.open("rb") as raw:
            gzipped = raw.read(2) == _GZIP_MAGIC
        with gzip.open(self.path, "rb") if gzipped else self.path.open("rb") as binary:
            reader = csv.reader(self._decoded_lines(binary))
            header: list[str] | None = None
            n_rows = 0
            while True:
                line = reader.line_num + 1  # where the next record starts
                try:
                    record = next(reader, None)
                except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
                    raise self.error(line, None, f"gzip data is corrupt or truncated ({exc})") from exc
                except csv.Error as exc:
                    raise self.error(line, None, f"is not valid CSV ({exc})") from exc
                if record is None:
                    break
                if header is None:
                    header = self._check_header(record)
                    continue
                if not record:
                    continue  # a blank line carries no data
                fields = self._check_row(line, header, record)
                yield _Row(line, fields, self._last_ts)
                n_rows += 1
        if header is None:
            raise self.error(1, None, f"file is empty; expected the header {','.join(self.columns)}")
        if n_rows == 0:
            raise self.error(1, None, "file has a header but no data rows")

    def _decoded_lines(self, binary: BinaryIO) -> Iterator[str]:
        """Decode line by line (not in 8 KiB chunks) so a bad byte is blamed on its own line."""
        for number, raw in enumerate(binary, start=1):
            try:
                yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise self.error(number, None, f"is not UTF-8 text ({exc.reason})") from exc

    def _check_header(self, record: list[str]) -> list[str]:
        for name in record:
            if name not in self.columns:
                raise self.error(1, name, f"unexpected column; the header must be {','.join(self.columns)}")
            if record.count(name) > 1:
                raise self.error(1, name, "column appears more than once in the header")
        for name in self.columns:
            if name not in record:
                raise self.error(1, name, f"column missing from the header {','.join(record)!r}")
        return record

    def _check_row(self, line: int, header: list[str], record: list[str]) -> dict[str, str]:
        """Also records the row's timestamp in `_last_ts`, the floor for the next row."""
        if len(record) < len(header):
            missing = header[len(record)]
            raise self.error(line, missing, f"missing: the row has {len(record)} fields, the header {len(header)}")
        if len(record) > len(header):
            raise self.error(line, None, f"the row has {len(record)} fields, the header only {len(header)}")
        fields = dict(zip(header, record, strict=True))
        for name in ("exchange", "symbol"):
            seen = getattr(self, name)
            if seen is None:
                setattr(self, name, fields[name])
            elif fields[name] != seen:
                raise self.error(line, name, f"{fields[name]!r} differs from {seen!r} in "
                                 f"{self._identity_source}; a tape holds one exchange and symbol")
        ts = self.micros(line, fields, "timestamp")
        if ts < self._last_ts:
            # In the file's own unit, microseconds, so the numbers can be found in the file.
            raise self.error(line, "timestamp", f"{ts // 1000} is before the previous row's {self._last_ts // 1000} "
                             "(microseconds); timestamps must not decrease")
        self._last_ts = ts
        return fields

    def micros(self, line: int, fields: dict[str, str], name: str) -> int:
        text = fields[name]
        if _INTEGER.fullmatch(text) is None:
            raise self.error(line, name, f"{text!r} is not an integer count of microseconds")
        if len(text) > 20 or int(text) > _MAX_MICROS:
            raise self.error(line, name, f"{text} is too large for a nanosecond timestamp")
        return int(text) * 1000

    def decimal(self, line: int, fields: dict[str, str], name: str, precision: int, kind: str) -> Decimal:
        """The exact value of a decimal field, refusing what the instrument cannot represent exactly."""
        text = fields[name]
        if _NUMBER.fullmatch(text) is None:
            finite = text.strip().lstrip("+-").lower() not in _NOT_FINITE
            raise self.error(line, name, f"{text!r} is not {'a' if finite else 'a finite'} number")
        value = Decimal(text)
        if value < 0:
            raise self.error(line, name, f"{text} is negative")
        if value == 0:
            return Decimal(0)
        if value.adjusted() > 20:
            raise self.error(line, name, f"{text} is out of range")
        if _decimal_places(value) > precision:
            raise self.error(line, name, f"{text} has more decimals than the {kind} precision {precision}")
        return value

    def price(self, line: int, fields: dict[str, str], precision: int) -> Price:
        value = self.decimal(line, fields, "price", precision, "price")
        if value == 0:
            raise self.error(line, "price", f"{fields['price']} is not positive")
        # Price(Decimal, precision) goes through a float and can change the value; text is exact.
        try:
            return Price.from_str(f"{value:.{precision}f}")
        except ValueError as exc:
            raise self.error(line, "price", f"{fields['price']} is out of range ({exc})") from exc

    def quantity(self, line: int, fields: dict[str, str], precision: int) -> Quantity:
        value = self.decimal(line, fields, "amount", precision, "size")
        try:
            return Quantity.from_str(f"{value:.{precision}f}")
        except ValueError as exc:
            raise self.error(line, "amount", f"{fields['amount']} is out of range ({exc})") from exc


def _decimal_places(value: Decimal) -> int:
    """Decimals the value needs, so that '1.50' fits precision 1 just as '1.5' does."""
    _, digits, exponent = value.as_tuple()
    significant = "".join(map(str, digits)).rstrip("0")
    return max(0, -(int(exponent) + len(digits) - len(significant)))


def _read_book(reader: _Reader, price_precision: int, size_precision: int) -> Iterator[_BookRow]:
    for row in reader.rows():
        f = row.fields
        if f["is_snapshot"] not in _SNAPSHOT_FLAGS:
            raise reader.error(row.line, "is_snapshot", f"{f['is_snapshot']!r} is neither 'true' nor 'false'")
        if f["side"] not in _BOOK_SIDES:
            raise reader.error(row.line, "side", f"{f['side']!r} is neither 'bid' nor 'ask'")
        yield _BookRow(
            line=row.line,
            ts_event=row.ts_event,
            local_ns=reader.micros(row.line, f, "local_timestamp"),
            is_snapshot=_SNAPSHOT_FLAGS[f["is_snapshot"]],
            side=_BOOK_SIDES[f["side"]],
            price=reader.price(row.line, f, price_precision),
            size=reader.quantity(row.line, f, size_precision),
        )


def _book_groups(reader: _Reader, price_precision: int, size_precision: int) -> Iterator[list[_BookRow]]:
    """Rows that arrived together (see the module docstring): a group ends where the next row has
    both another exchange timestamp and another receive time than the row before it."""
    group: list[_BookRow] = []
    for row in _read_book(reader, price_precision, size_precision):
        if group and row.ts_event != group[-1].ts_event and row.local_ns != group[-1].local_ns:
            yield group
            group = []
        group.append(row)
    if group:
        yield group


@dataclass
class _BookTape:
    deltas: list[OrderBookDelta]
    batches: int
    skipped_deletes: int
    crossed_batches: int


def _book_deltas(
    reader: _Reader, instrument_id: InstrumentId, price_precision: int, size_precision: int, allow_crossed: bool
) -> _BookTape:
    levels: dict[OrderSide, set[int]] = {OrderSide.BUY: set(), OrderSide.SELL: set()}
    deltas: list[OrderBookDelta] = []
    in_snapshot = False
    ts_init = 0
    batches = skipped = crossed = 0
    for group in _book_groups(reader, price_precision, size_precision):
        # local_timestamp is when Tardis received each message and can step back between rows of
        # one exchange timestamp (or between timestamps); NautilusTrader needs ts_init
        # non-decreasing to write and replay the catalog, so a batch is stamped with the latest
        # receive time seen so far: the moment all of it, and everything before it, had arrived.
        ts_init = max(ts_init, *(row.local_ns for row in group))
        changes: list[tuple[BookAction, BookOrder | None]] = []
        order_ts: list[int] = []  # each change keeps its row's exchange time: data, not our clock
        for row in group:
            if row.is_snapshot and not in_snapshot:
                changes.append((BookAction.CLEAR, None))
                order_ts.append(row.ts_event)
                levels[OrderSide.BUY].clear()
                levels[OrderSide.SELL].clear()
            in_snapshot = row.is_snapshot
            side_levels = levels[row.side]
            if row.size.raw == 0:
                if row.price.raw not in side_levels:
                    skipped += 1
                    continue
                side_levels.discard(row.price.raw)
                action = BookAction.DELETE
            elif row.price.raw in side_levels:
                action = BookAction.UPDATE
            else:
                side_levels.add(row.price.raw)
                action = BookAction.ADD
            changes.append((action, BookOrder(row.side, row.price, row.size, 0)))
            order_ts.append(row.ts_event)
        for i, (action, order) in enumerate(changes):
            flags = F_LAST if i == len(changes) - 1 else 0
            deltas.append(OrderBookDelta(instrument_id, action, order, flags, len(deltas) + 1, order_ts[i], ts_init))
        batches += bool(changes)
        bids, asks = levels[OrderSide.BUY], levels[OrderSide.SELL]
        if changes and bids and asks and max(bids) >= min(asks):
            if not allow_crossed:
                bid, ask = (Price.from_raw(raw, price_precision) for raw in (max(bids), min(asks)))
                raise reader.error(group[-1].line, None, (
                    f"the book is crossed after this row (timestamp {group[-1].ts_event // 1000}): best bid {bid} "
                    f">= best ask {ask}; --allow-crossed imports it anyway and records the count in the catalog"))
            crossed += 1
    return _BookTape(deltas, batches, skipped, crossed)


def _trade_ticks(
    reader: _Reader, instrument_id: InstrumentId, price_precision: int, size_precision: int
) -> list[TradeTick]:
    trades: list[TradeTick] = []
    ts_init = 0
    for row in reader.rows():
        f = row.fields
        if f["side"] not in _AGGRESSORS:
            raise reader.error(row.line, "side", f"{f['side']!r} is not 'buy', 'sell' or 'unknown'")
        # Same reason as for book batches: receive times may step back, ts_init may not.
        ts_init = max(ts_init, reader.micros(row.line, f, "local_timestamp"))
        price = reader.price(row.line, f, price_precision)
        size = reader.quantity(row.line, f, size_precision)
        if size.raw == 0:
            raise reader.error(row.line, "amount", f"{f['amount']} is not positive; a trade has a size")
        # Ids NautilusTrader cannot hold (empty, longer than 36, non-ASCII) are replaced by the
        # timestamp and line, unique within the file and the same on every re-import.
        trade_id = f["id"] if _TRADE_ID.fullmatch(f["id"]) else f"{f['timestamp']}-{row.line}"
        trades.append(
            TradeTick(instrument_id, price, size, _AGGRESSORS[f["side"]], TradeId(trade_id), row.ts_event, ts_init)
        )
    return trades


def import_tardis(
    book: Path,
    trades: Path | None,
    instrument_id: str,
    price_precision: int,
    size_precision: int,
    out: Path,
    allow_crossed: bool = False,
    venue: str | None = None,
) -> dict[str, Any]:
    """Import Tardis book (and optionally trades) CSVs into a new catalog at `out`.

    Returns ``{deltas, batches, trades, start, end, skipped_deletes, crossed_batches}``;
    ``start``/``end`` are the first and last ts_init (book or trade) in nanoseconds, the replay
    window `open_tape` will report. Raises `TardisFormatError` for bad input (a crossed book
    included, unless `allow_crossed`) and ValueError for a bad instrument or precision, in both
    cases before anything is written. `venue` names the venue profile (data/venues.py) the catalog
    records, so that backtests of it take their fees, latency and cadence from it.
    """
    if venue is not None:
        venue_profile(venue)  # an unknown name fails now, not at the first backtest
    instrument = currency_pair(instrument_id, price_precision, size_precision)
    book_reader = _Reader(Path(book), BOOK_COLUMNS)
    tape = _book_deltas(book_reader, instrument.id, price_precision, size_precision, allow_crossed)
    if not tape.deltas:
        raise book_reader.error(1, None, "no row changes the book (every row deletes a level never added)")
    ticks: list[TradeTick] = []
    if trades is not None:
        trade_reader = _Reader(Path(trades), TRADE_COLUMNS, like=book_reader)
        ticks = _trade_ticks(trade_reader, instrument.id, price_precision, size_precision)
    meta = {
        "source": "tardis",
        # Relative to the catalog, so a catalog shipped beside its source files names them portably.
        "book_file": os.path.relpath(Path(book).resolve(), Path(out).resolve()),
        "trades_file": os.path.relpath(Path(trades).resolve(), Path(out).resolve()) if trades is not None else None,
        "exchange": book_reader.exchange,
        "symbol": book_reader.symbol,
        "synthetic": False,
        "crossed_batches": tape.crossed_batches,
    }
    if venue is not None:
        meta["venue_profile"] = venue
    write_catalog(Path(out), instrument, tape.deltas, ticks, meta)
    times = [tape.deltas[0].ts_init, tape.deltas[-1].ts_init] + [t.ts_init for t in ticks[:1] + ticks[-1:]]
    return {
        "deltas": len(tape.deltas),
        "batches": tape.batches,
        "trades": len(ticks),
        "start": min(times),
        "end": max(times),
        "skipped_deletes": tape.skipped_deletes,
        "crossed_batches": tape.crossed_batches,
    }


__all__ = ["BOOK_COLUMNS", "TRADE_COLUMNS", "TardisFormatError", "import_tardis"]
