"""Tardis import: what the CSVs say is exactly what replays, and bad input never reaches the catalog."""

from __future__ import annotations

import csv
import gzip
import io
import tempfile
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nautilus_trader.model.book import OrderBook
from nautilus_trader.model.data import OrderBookDeltas, TradeTick
from nautilus_trader.model.enums import AggressorSide, BookAction, BookType, RecordFlag

from data.catalog import CatalogError, open_tape
from data.tardis import TardisFormatError, import_tardis

INSTRUMENT = "BTC/USDT.BINANCE"
T0 = 1_700_000_000_000_000  # microseconds
LONG_ID = "x" * 37

BOOK_HEADER = "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount"
TRADES_HEADER = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount"


def _book_rows() -> list[str]:
    rows = [
        # snapshot, several rows per timestamp; one local_timestamp lags within the group
        (1000, 1500, "true", "bid", "100.00", "1.000"),
        (1000, 1400, "true", "bid", "99.50", "2.000"),
        (1000, 1500, "true", "ask", "100.50", "1.500"),
        (1000, 1500, "true", "ask", "101.00", "3.000"),
        # update and delete of known levels
        (2000, 2600, "false", "bid", "100.00", "1.250"),
        (2000, 2600, "false", "ask", "100.50", "0"),
        # add; delete of a level the book never held (skipped)
        (3000, 3100, "false", "bid", "99.75", "0.5"),
        (3000, 3050, "false", "ask", "102.00", "0"),
        # local_timestamp steps back across groups: ts_init stays at 3100
        (4000, 2000, "false", "ask", "100.75", "4"),
        # a new snapshot wipes everything before it
        (5000, 5000, "true", "bid", "99.00", "1"),
        (5000, 5000, "true", "ask", "101.50", "2.0"),
        (6000, 6000, "false", "bid", "99.25", "3"),
        # only an unknown-level delete: no batch at all
        (7000, 7000, "false", "ask", "103.00", "0"),
    ]
    return [f"binance,BTCUSDT,{T0 + ts},{T0 + lt},{snap},{side},{px},{amt}" for ts, lt, snap, side, px, amt in rows]


def _trade_rows() -> list[str]:
    rows = [
        (1500, 1600, "t1", "buy", "100.50", "0.100"),
        (2500, 2600, "t2", "sell", "100.00", "0.25"),
        (2500, 2700, "", "unknown", "100.25", "1"),
        (3500, 3600, LONG_ID, "", "100.25", "0.5"),
    ]
    return [f"binance,BTCUSDT,{T0 + ts},{T0 + lt},{i},{side},{px},{amt}" for ts, lt, i, side, px, amt in rows]


BOOK = "\n".join([BOOK_HEADER, *_book_rows()]) + "\n"
TRADES = "\n".join([TRADES_HEADER, *_trade_rows()]) + "\n"


def _write(path: Path, text: str | bytes) -> Path:
    data = text.encode() if isinstance(text, str) else text
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def _import(tmp_path: Path, book: str = BOOK, trades: str | None = TRADES, suffix: str = ".csv", **kw) -> dict:
    out = kw.pop("out", tmp_path / "catalog")
    return import_tardis(
        _write(tmp_path / f"book{suffix}", book),
        None if trades is None else _write(tmp_path / f"trades{suffix}", trades),
        kw.pop("instrument_id", INSTRUMENT),
        kw.pop("price_precision", 2),
        kw.pop("size_precision", 3),
        out,
    )


def _replay(out: Path) -> tuple[list[OrderBookDeltas], list[TradeTick], OrderBook]:
    tape = open_tape(out)
    batches: list[OrderBookDeltas] = []
    trades: list[TradeTick] = []
    for chunk in tape.chunks():
        for item in chunk:
            (batches if isinstance(item, OrderBookDeltas) else trades).append(item)
    book = OrderBook(tape.instrument.id, BookType.L2_MBP)
    for batch in batches:
        book.apply_deltas(batch)
    return batches, trades, book


def _levels(levels) -> dict[Decimal, Decimal]:
    return {level.price.as_decimal(): level.size() for level in levels}


def _ns(us: int) -> int:
    return (T0 + us) * 1000


def test_round_trip_book_and_trades(tmp_path: Path) -> None:
    summary = _import(tmp_path)
    batches, trades, book = _replay(tmp_path / "catalog")

    assert _levels(book.bids()) == {Decimal("99.25"): 3, Decimal("99.00"): 1}
    assert _levels(book.asks()) == {Decimal("101.50"): 2}

    actions = [[d.action for d in b.deltas] for b in batches]
    A, U, D, C = BookAction.ADD, BookAction.UPDATE, BookAction.DELETE, BookAction.CLEAR
    assert actions == [[C, A, A, A, A], [U, D], [A], [A], [C, A, A], [A]]
    assert [b.deltas[0].ts_event for b in batches] == [_ns(t) for t in (1000, 2000, 3000, 4000, 5000, 6000)]
    # group max of local_timestamp, never below an earlier batch's
    assert [b.deltas[0].ts_init for b in batches] == [_ns(t) for t in (1500, 2600, 3100, 3100, 5000, 6000)]
    for batch in batches:
        assert len({(d.ts_event, d.ts_init) for d in batch.deltas}) == 1
        assert [bool(d.flags & RecordFlag.F_LAST) for d in batch.deltas] == [False] * (len(batch.deltas) - 1) + [True]
    sequences = [d.sequence for b in batches for d in b.deltas]
    assert sequences == list(range(1, len(sequences) + 1))

    assert [(t.price.as_decimal(), t.size.as_decimal(), t.aggressor_side, str(t.trade_id)) for t in trades] == [
        (Decimal("100.50"), Decimal("0.1"), AggressorSide.BUYER, "t1"),
        (Decimal("100.00"), Decimal("0.25"), AggressorSide.SELLER, "t2"),
        (Decimal("100.25"), Decimal("1"), AggressorSide.NO_AGGRESSOR, f"{T0 + 2500}-4"),
        (Decimal("100.25"), Decimal("0.5"), AggressorSide.NO_AGGRESSOR, f"{T0 + 3500}-5"),
    ]
    assert [(t.ts_event, t.ts_init) for t in trades] == [
        (_ns(1500), _ns(1600)), (_ns(2500), _ns(2600)), (_ns(2500), _ns(2700)), (_ns(3500), _ns(3600))
    ]
    assert summary == {
        "deltas": 13, "batches": 6, "trades": 4, "start": _ns(1500), "end": _ns(6000), "skipped_deletes": 2,
        "crossed_batches": 0,
    }
    meta = open_tape(tmp_path / "catalog").meta
    assert (meta["source"], meta["synthetic"], meta["symbol"]) == ("tardis", False, "BTCUSDT")
    assert meta["book_file"] == "../book.csv"  # relative to the catalog


def test_gzip_input_matches_plain(tmp_path: Path) -> None:
    plain = _import(tmp_path, out=tmp_path / "plain")
    gzipped = _import(tmp_path, suffix=".csv.gz", out=tmp_path / "gz")
    assert gzipped == plain
    assert [b.deltas for b in _replay(tmp_path / "gz")[0]] == [b.deltas for b in _replay(tmp_path / "plain")[0]]


def test_book_without_trades(tmp_path: Path) -> None:
    assert _import(tmp_path, trades=None)["trades"] == 0


def test_bad_instrument_is_a_clear_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="BASE/QUOTE.VENUE"):
        _import(tmp_path, instrument_id="BTCUSDT")
    with pytest.raises(ValueError, match="price precision must be between 0 and 9"):
        _import(tmp_path, price_precision=12)
    assert not (tmp_path / "catalog").exists()


def _replace(text: str, line: int, row: str) -> str:
    lines = text.splitlines()
    lines[line - 1] = row
    return "\n".join(lines) + "\n"


def _field(text: str, line: int, column: str, value: str) -> str:
    lines = text.splitlines()
    header = lines[0].split(",")
    cells = lines[line - 1].split(",")
    cells[header.index(column)] = value
    return _replace(text, line, ",".join(cells))


B, T = "book", "trades"
MALFORMED = {
    # id: (file, text, line, field or None, message fragment)
    "header-missing-column": (B, _replace(BOOK, 1, BOOK_HEADER.removesuffix(",amount")), 1, "amount", "missing"),
    "header-unknown-column": (B, _replace(BOOK, 1, BOOK_HEADER + ",foo"), 1, "foo", "unexpected"),
    "header-duplicate": (T, _replace(TRADES, 1, TRADES_HEADER.replace(",id,", ",side,")), 1, "side", "more than once"),
    "too-few-fields": (B, _replace(BOOK, 3, "binance,BTCUSDT,1,1,true,bid,1.00"), 3, "amount", "7 fields"),
    "too-many-fields": (T, _replace(TRADES, 2, _trade_rows()[0] + ",9"), 2, None, "9 fields"),
    "timestamp-not-integer": (B, _field(BOOK, 4, "timestamp", "12.5"), 4, "timestamp", "not an integer"),
    "local-timestamp-junk": (T, _field(TRADES, 3, "local_timestamp", "abc"), 3, "local_timestamp", "not an integer"),
    "timestamp-too-large": (B, _field(BOOK, 2, "timestamp", "9" * 25), 2, "timestamp", "too large"),
    # In the file's unit (microseconds), so the numbers can be found in the file.
    "timestamp-backwards": (B, _field(BOOK, 6, "timestamp", str(T0 + 999)), 6, "timestamp",
                            f"{T0 + 999} is before the previous row's {T0 + 1000} (microseconds)"),
    "trade-timestamp-backwards": (T, _field(TRADES, 5, "timestamp", str(T0)), 5, "timestamp", "must not decrease"),
    "bad-is-snapshot": (B, _field(BOOK, 7, "is_snapshot", "yes"), 7, "is_snapshot", "'yes'"),
    "bad-book-side": (B, _field(BOOK, 2, "side", "buy"), 2, "side", "'buy'"),
    "bad-trade-side": (T, _field(TRADES, 2, "side", "bid"), 2, "side", "'bid'"),
    "price-not-a-number": (B, _field(BOOK, 8, "price", "0.12x"), 8, "price", "'0.12x' is not a number"),
    "price-nan": (B, _field(BOOK, 3, "price", "NaN"), 3, "price", "not a finite number"),
    "amount-inf": (T, _field(TRADES, 4, "amount", "inf"), 4, "amount", "not a finite number"),
    "amount-negative": (B, _field(BOOK, 5, "amount", "-1"), 5, "amount", "negative"),
    "price-zero": (B, _field(BOOK, 5, "price", "0.00"), 5, "price", "not positive"),
    "price-out-of-range": (B, _field(BOOK, 5, "price", "1e20"), 5, "price", "out of range"),
    "price-too-precise": (B, _field(BOOK, 9, "price", "100.123"), 9, "price", "price precision 2"),
    "amount-too-precise": (T, _field(TRADES, 2, "amount", "0.0001"), 2, "amount", "size precision 3"),
    "trade-amount-zero": (T, _field(TRADES, 3, "amount", "0"), 3, "amount", "not positive"),
    "symbol-changes": (B, _field(BOOK, 10, "symbol", "ETHUSDT"), 10, "symbol", "'ETHUSDT'"),
    "exchange-changes": (B, _field(BOOK, 4, "exchange", "bybit"), 4, "exchange", "'bybit'"),
    "trades-for-another-symbol": (T, _field(TRADES, 2, "symbol", "ETHUSDT"), 2, "symbol", "book file"),
    "header-only": (B, BOOK_HEADER + "\n", 1, None, "no data rows"),
    "zero-bytes": (T, "", 1, None, "empty"),
    "not-utf8": (T, TRADES.encode() + b"binance,BTCUSDT,\xff\xfe\n", 6, None, "UTF-8"),
    "only-unknown-deletes": (B, "\n".join([BOOK_HEADER, _book_rows()[-1]]) + "\n", 1, None, "no row changes"),
}


@pytest.mark.parametrize(("which", "text", "line", "field", "fragment"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_input_is_located_and_writes_nothing(
    tmp_path: Path, which: str, text: str | bytes, line: int, field: str | None, fragment: str
) -> None:
    files = {"book": BOOK, "trades": TRADES, which: text}
    with pytest.raises(TardisFormatError) as caught:
        _import(tmp_path, book=files["book"], trades=files["trades"])
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / (which + '.csv')} line {line}")
    if field is not None:
        assert f"field {field!r}" in message
    assert fragment in message
    assert (caught.value.line, caught.value.field) == (line, field)
    assert not (tmp_path / "catalog").exists()


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_existing_catalog_stays_byte_identical(tmp_path: Path) -> None:
    out = tmp_path / "catalog"
    (tmp_path / "first").mkdir()
    _import(tmp_path / "first", instrument_id="ETH/USDT.BINANCE", out=out)
    before = _tree(out)

    with pytest.raises(TardisFormatError, match="price precision 2"):
        _import(tmp_path, book=_field(BOOK, 9, "price", "100.123"), out=out)
    assert _tree(out) == before

    with pytest.raises(CatalogError):
        _import(tmp_path, out=out)
    assert _tree(out) == before


def _csv_line(cells: list[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(cells)
    return buffer.getvalue().encode()


_TOKENS = st.sampled_from(
    ["binance", "BTCUSDT", str(T0 + 9000), "1" * 30, "true", "false", "bid", "ask", "buy", "sell", "unknown",
     "100.00", "0", "1.5", "0.001", "100.001", "-1", "nan", "1e999", "", "\"", "\n", "\r", "\x00", "é",
     "x" * 40, "t9"]
)
_CELL = st.one_of(_TOKENS, _TOKENS, st.text(max_size=12))
_JUNK_ROW = st.one_of(
    # plausible prefix and shape, so the junk reaches the checks of each later field
    st.lists(_CELL, min_size=4, max_size=4).map(
        lambda cells: _csv_line(["binance", "BTCUSDT", str(T0 + 9000), str(T0 + 9000), *cells])
    ),
    st.lists(_CELL, min_size=6, max_size=6).map(lambda cells: _csv_line(["binance", "BTCUSDT", *cells])),
    st.lists(_CELL, max_size=10).map(_csv_line),
    st.text(max_size=60).map(str.encode),
    st.binary(max_size=40),
)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(which=st.sampled_from(["book", "trades"]), junk=st.lists(_JUNK_ROW, min_size=1, max_size=4))
def test_junk_rows_only_ever_raise_tardis_format_error(which: str, junk: list[bytes]) -> None:
    files = {"book": BOOK.encode(), "trades": TRADES.encode()}
    files[which] += b"".join(junk)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        try:
            import_tardis(
                _write(root / "book.csv", files["book"]),
                _write(root / "trades.csv", files["trades"]),
                INSTRUMENT, 2, 3, root / "catalog",
            )
        except TardisFormatError:
            assert not (root / "catalog").exists()


def test_ids_nautilus_cannot_hold_are_derived(tmp_path: Path) -> None:
    # Non-ASCII or NUL would abort the process inside NautilusTrader's Rust core rather than raise.
    ids = ["é", "\x00", " ", "x" * 36]
    rows = [f"binance,BTCUSDT,{T0 + 2000 + i},{T0 + 2000 + i},{id_},buy,100.00,1" for i, id_ in enumerate(ids)]
    _import(tmp_path, trades="\n".join([TRADES_HEADER, *rows]) + "\n")
    trades = _replay(tmp_path / "catalog")[1]
    assert [str(t.trade_id) for t in trades] == [f"{T0 + 2000}-2", f"{T0 + 2001}-3", f"{T0 + 2002}-4", "x" * 36]


def test_truncated_gzip_is_a_format_error(tmp_path: Path) -> None:
    # gzip is recognised by its magic bytes, so the name does not have to end in .gz
    with pytest.raises(TardisFormatError, match="gzip data is corrupt or truncated"):
        _import(tmp_path, book=gzip.compress(BOOK.encode())[:-12])
    assert not (tmp_path / "catalog").exists()


def test_a_crossed_book_is_refused_naming_its_row_unless_allowed(tmp_path: Path) -> None:
    crossed = BOOK.replace(f"{T0 + 3000},{T0 + 3100},false,bid,99.75,0.5",
                           f"{T0 + 3000},{T0 + 3100},false,bid,100.75,0.5")
    with pytest.raises(TardisFormatError) as caught:
        _import(tmp_path, book=crossed)
    # The bid at 100.75 is below the best ask (101.00) until the ask at 100.75 joins, at line 10.
    assert caught.value.line == 10 and "crossed" in str(caught.value)
    assert "best bid 100.75 >= best ask 100.75" in str(caught.value) and f"timestamp {T0 + 4000}" in str(caught.value)
    assert not (tmp_path / "catalog").exists()
    summary = import_tardis(_write(tmp_path / "book.csv", crossed), None, INSTRUMENT, 2, 3, tmp_path / "catalog",
                            allow_crossed=True)
    assert summary["crossed_batches"] == 1  # the snapshot at 5000 uncrosses it
    assert open_tape(tmp_path / "catalog").meta["crossed_batches"] == 1


def test_trades_after_the_last_book_batch_are_replayed(tmp_path: Path) -> None:
    late = TRADES + f"binance,BTCUSDT,{T0 + 9000},{T0 + 9100},late,buy,101.50,0.2\n"
    summary = _import(tmp_path, trades=late)
    _, trades, _ = _replay(tmp_path / "catalog")
    assert len(trades) == summary["trades"] == 5 and str(trades[-1].trade_id) == "late"
    assert summary["end"] == _ns(9100) == open_tape(tmp_path / "catalog").end_ns


def test_a_batch_is_what_arrived_together_whichever_clock_the_timestamp_column_holds(tmp_path: Path) -> None:
    """Two exchange messages received in one instant are one batch (the engine cannot react between
    them); one message is never split. Re-stamping every row with its receive time gives the same
    batches, so a tape imported either way replays the same."""
    rows = [  # (exchange ts, receive ts, snapshot, side, price, amount)
        (1000, 1500, "true", "bid", "100.00", "1"), (1000, 1500, "true", "ask", "100.50", "1"),
        (1046, 1500, "false", "bid", "100.00", "2"),  # another message, received with the snapshot
        (2000, 2600, "false", "ask", "100.50", "3"), (2100, 2700, "false", "bid", "99.00", "1"),
    ]
    as_recorded = "\n".join([BOOK_HEADER] + [f"binance,BTCUSDT,{T0 + a},{T0 + b},{s},{d},{p},{q}"
                                               for a, b, s, d, p, q in rows]) + "\n"
    restamped = "\n".join([BOOK_HEADER] + [f"binance,BTCUSDT,{T0 + b},{T0 + b},{s},{d},{p},{q}"
                                             for _, b, s, d, p, q in rows]) + "\n"
    _import(tmp_path, book=as_recorded, trades=None, out=tmp_path / "recorded")
    _import(tmp_path, book=restamped, trades=None, out=tmp_path / "restamped")
    shapes = []
    for name in ("recorded", "restamped"):
        batches, _, _ = _replay(tmp_path / name)
        shapes.append([[(d.action, d.ts_init) for d in b.deltas] for b in batches])
    assert shapes[0] == shapes[1]
    assert [len(b) for b in shapes[0]] == [4, 1, 1]  # CLEAR + 2 ADDs + the UPDATE received with them
