"""`/health` and `/metrics` over HTTP, served from inside the node's asyncio loop.

A plain HTTP/1.1 server on asyncio streams (GET only, one request per connection): the two pages
need no framework, and running in the node's loop means `status()` (the node's `node_status`)
is called on the thread that owns the node's state. Bound to 127.0.0.1 by default: the pages
are for the operator, the container's healthcheck and a local Prometheus.

`/health` answers 200 only when the node is ready, connected and its feed is not stale, so a
supervisor restarts a node that lost the chain; a halted node stays healthy (the operator halted
it on purpose, a restart would not help). `/metrics` is the Prometheus text format 0.0.4.

The server never dies on what a client sends: malformed requests get 400, slow ones are cut off
after `REQUEST_TIMEOUT_S`, and a failing `status()` gives 503/500 with the error.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("flashmm.ops")

REQUEST_TIMEOUT_S = 5.0
MAX_HEADER_BYTES = 16 * 1024
MAX_HEADERS = 100
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_REQUEST_LINE = re.compile(r"([!#$%&'*+.^_`|~0-9A-Za-z-]+) (/[\x21-\x7e]*) HTTP/1\.[01]")
_HEALTH_KEYS = ("mode", "connected", "stale", "halted", "halt_reason", "trading_state", "last_block_height",
                "last_block_age_s", "uptime_s", "updated_at")
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
            431: "Request Header Fields Too Large", 500: "Internal Server Error", 503: "Service Unavailable"}


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class OpsServer:
    server: asyncio.Server
    host: str
    port: int

    async def close(self) -> None:
        self.server.close()
        await self.server.wait_closed()


async def close_quietly(writer: asyncio.StreamWriter) -> None:
    """Close a server-side stream whose client may already be gone."""
    writer.close()
    try:
        await writer.wait_closed()
    except ConnectionError:
        pass


async def start_ops_server(host: str, port: int, status: Callable[[], dict]) -> OpsServer:
    """Serve /health and /metrics on host:port (port 0: a free port, see `.port`)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            code, content_type, body = await _respond(reader, status)
        except (asyncio.IncompleteReadError, ConnectionError):
            code = 0  # the client went away: nothing to answer
        except Exception as exc:  # noqa: BLE001 - one bad request must not take the server down
            log.exception("ops: request failed")
            code, content_type, body = 500, "text/plain; charset=utf-8", f"internal error: {type(exc).__name__}\n"
        try:
            if code:
                payload = body.encode("utf-8")
                writer.write(
                    f"HTTP/1.1 {code} {_REASONS[code]}\r\nContent-Type: {content_type}\r\n"
                    f"Content-Length: {len(payload)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n".encode()
                    + payload
                )
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            await close_quietly(writer)

    server = await asyncio.start_server(handle, host, port, limit=MAX_HEADER_BYTES)
    bound = server.sockets[0].getsockname()[1]
    log.info("ops: /health and /metrics on http://%s:%s", host, bound)
    return OpsServer(server, host, bound)


async def _respond(reader: asyncio.StreamReader, status: Callable[[], dict]) -> tuple[int, str, str]:
    try:
        method, path = await asyncio.wait_for(_read_request(reader), REQUEST_TIMEOUT_S)
    except _BadRequest as exc:
        return exc.status, "text/plain; charset=utf-8", f"{exc}\n"
    except TimeoutError:
        return 408, "text/plain; charset=utf-8", "request not received in time\n"
    if path not in ("/health", "/metrics"):
        return 404, "text/plain; charset=utf-8", "not found: try /health or /metrics\n"
    if method != "GET":
        return 405, "text/plain; charset=utf-8", "only GET is served\n"
    try:
        snapshot = status()
    except Exception as exc:  # noqa: BLE001 - the node may be starting or stopping
        log.warning("ops: node status unavailable: %s", exc)
        if path == "/health":
            return 503, "application/json", json.dumps({"ready": False, "error": f"status unavailable: {exc}"}) + "\n"
        return 500, "text/plain; charset=utf-8", f"status unavailable: {exc}\n"
    if path == "/health":
        healthy, body = health(snapshot)
        return (200 if healthy else 503), "application/json", json.dumps(body, default=str) + "\n"
    return 200, PROMETHEUS_CONTENT_TYPE, metrics_text(snapshot)


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str]:
    """The request line's method and path (query dropped); headers are read and ignored."""
    try:
        line = await reader.readuntil(b"\n")
        text = line.decode("ascii").rstrip("\r\n")
    except (asyncio.LimitOverrunError, ValueError):
        raise _BadRequest(400, "malformed request line") from None
    match = _REQUEST_LINE.fullmatch(text)
    if match is None:
        raise _BadRequest(400, "malformed request line")
    for _ in range(MAX_HEADERS):
        try:
            header = await reader.readuntil(b"\n")
        except (asyncio.LimitOverrunError, ValueError):
            raise _BadRequest(431, "header line too long") from None
        if header in (b"\r\n", b"\n"):
            return match[1], match[2].split("?", 1)[0]
    raise _BadRequest(431, "too many header lines")


def health(status: dict) -> tuple[bool, dict]:
    """(healthy, body): healthy = ready and connected and not stale.

    `ready` is the node's own flag when it reports one; otherwise the node is ready once it has
    received a block (`last_block_age_s` is set: the height alone is known from the connect).
    """
    ready = bool(status.get("ready", status.get("last_block_age_s") is not None))
    body = {"ready": ready, **{k: status[k] for k in _HEALTH_KEYS if k in status}}
    return ready and bool(status.get("connected")) and not status.get("stale", False), body


# -- Prometheus -----------------------------------------------------------------------------------

# (name, type, help, path into node_status()). Counters end in _total; units are base units.
_SIMPLE = (
    ("flashmm_pnl", "gauge", "Strategy PnL in quote currency, inventory at mid, net of fees and costs.", ("pnl",)),
    ("flashmm_inventory", "gauge", "Net base-currency quantity bought since start.", ("inventory",)),
    ("flashmm_cash", "gauge", "Quote currency received minus paid since start, after fees.", ("cash",)),
    ("flashmm_mid_price", "gauge", "Mid price of the book (quote currency per unit of base).", ("mid",)),
    ("flashmm_fills_total", "counter", "Fills received this session.", ("fills",)),
    ("flashmm_rejects_total", "counter", "Orders the venue rejected.", ("execution", "rejects")),
    ("flashmm_cancel_rejects_total", "counter", "Cancels the venue rejected.", ("execution", "cancel_rejects")),
    ("flashmm_places_total", "counter", "Place actions sent.", ("execution", "places")),
    ("flashmm_cancels_total", "counter", "Cancel actions sent.", ("execution", "cancels")),
    ("flashmm_txs_sent_total", "counter", "Transactions sent (batches of actions).", ("execution", "txs")),
    ("flashmm_txs_failed_total", "counter", "Transactions that landed with an error.", ("execution", "txs_failed")),
    ("flashmm_txs_expired_total", "counter", "Transactions past their timeout height without landing.",
     ("execution", "txs_expired")),
    ("flashmm_txs_refused_total", "counter", "Transactions the node refused at CheckTx.", ("execution", "txs_refused")),
    ("flashmm_tx_retries_total", "counter", "Transactions re-sent after a sequence mismatch.",
     ("execution", "tx_retries")),
    ("flashmm_sequence_resyncs_total", "counter", "Account sequence resyncs from the chain.",
     ("execution", "sequence_resyncs")),
    ("flashmm_reconnects_total", "counter", "WebSocket reconnects to the venue.", ("execution", "reconnects")),
    ("flashmm_replaces_total", "counter", "Cancel-and-place pairs sent as one replace (Monaco).",
     ("execution", "replaces")),
    ("flashmm_requests_total", "counter", "REST requests sent to the venue (Monaco).", ("execution", "requests")),
    ("flashmm_rate_limited_total", "counter", "HTTP 429 answers from the venue (Monaco).",
     ("execution", "rate_limited")),
    ("flashmm_server_errors_total", "counter", "HTTP 5xx answers from the venue (Monaco).",
     ("execution", "server_errors")),
    ("flashmm_relogins_total", "counter", "Fresh logins after a 401 (Monaco).", ("execution", "auth_relogins")),
    ("flashmm_orders_in_doubt_total", "counter", "Creates whose answer was lost, looked for on the venue (Monaco).",
     ("execution", "in_doubt")),
    ("flashmm_orphans_cancelled_total", "counter", "Unknown open orders of ours cancelled at reconciliation.",
     ("execution", "orphans_cancelled")),
    ("flashmm_inflight_txs", "gauge", "Transactions sent and not yet landed or expired.", ("execution", "inflight")),
    ("flashmm_block_height", "gauge", "Height of the last block received.", ("last_block_height",)),
    ("flashmm_block_lag_seconds", "gauge", "Seconds since the last block was received.", ("last_block_age_s",)),
    ("flashmm_blocks_seen_total", "counter", "Blocks received.", ("data", "blocks_seen")),
    ("flashmm_book_resnapshots_total", "counter", "Book re-snapshots after events stopped fitting.",
     ("data", "resnapshots")),
    ("flashmm_feed_stale_events_total", "counter", "Times the feed went stale.", ("data", "stale_events")),
    ("flashmm_signal_model_blocks_total", "counter", "Blocks the ML signal answered.", ("signal", "model_blocks")),
    ("flashmm_signal_fallback_blocks_total", "counter", "Blocks quoted on the fallback (no model signal).",
     ("signal", "fallback_blocks")),
    ("flashmm_uptime_seconds", "gauge", "Seconds since the node started.", ("uptime_s",)),
    ("flashmm_halted", "gauge", "1 if trading is halted (kill switch or operator).", ("halted",)),
    ("flashmm_connected", "gauge", "1 if the data and execution clients are connected.", ("connected",)),
    ("flashmm_stale", "gauge", "1 if the market data feed is stale.", ("stale",)),
)


def metrics_text(status: dict) -> str:
    """Prometheus text exposition (0.0.4) of a `node_status()` dict; absent values are left out."""
    families: list[tuple[str, str, str, list[tuple[dict, float]]]] = []

    def family(name: str, kind: str, help_text: str, samples: list[tuple[dict, object]]) -> None:
        numeric = [(labels, v) for labels, v in samples if _number(v) is not None]
        if numeric:
            families.append((name, kind, help_text, numeric))

    for name, kind, help_text, path in _SIMPLE:
        family(name, kind, help_text, [({}, _get(status, path))])

    quotes = status.get("quotes")
    if isinstance(quotes, list):
        sides = {"buy": [q for q in quotes if _side(q) == "BUY"], "sell": [q for q in quotes if _side(q) == "SELL"]}
        family("flashmm_live_quotes", "gauge", "Our orders on the book or on their way.", [({}, len(quotes))])
        family("flashmm_live_quotes_per_side", "gauge", "Our live orders per side.",
               [({"side": s}, len(qs)) for s, qs in sides.items()])
        family("flashmm_live_quote_qty", "gauge", "Unfilled quantity (base currency) of our live orders per side.",
               [({"side": s}, sum(_number(q.get("leaves")) or 0.0 for q in qs)) for s, qs in sides.items()])

    execution = status.get("execution") or {}
    if isinstance(execution, dict):
        cancels, fills = _number(execution.get("cancels")), _number(execution.get("fills"))
        if cancels is not None and fills:
            family("flashmm_cancel_to_fill_ratio", "gauge", "Cancels sent per fill this session.",
                   [({}, cancels / fills)])
        family("flashmm_tick_to_tx_seconds", "gauge", "Block event received to signed tx sent, quantiles.",
               [({"quantile": q}, _scaled(execution.get(key), 1e-3))
                for q, key in (("0.5", "tick_to_tx_ms_p50"), ("0.99", "tick_to_tx_ms_p99"))])
        family("flashmm_tick_to_order_seconds", "gauge",
               "Book update received to order request on the wire (Monaco), quantiles.",
               [({"quantile": q}, _scaled(execution.get(key), 1e-3))
                for q, key in (("0.5", "tick_to_order_ms_p50"), ("0.99", "tick_to_order_ms_p99"))])

    signal = status.get("signal") or {}
    if isinstance(signal, dict):
        trips = signal.get("trips")
        if isinstance(trips, dict):
            family("flashmm_signal_trips_total", "counter", "Signal circuit-breaker trips by reason.",
                   [({"reason": str(r)}, n) for r, n in sorted(trips.items())])
        family("flashmm_signal_inference_seconds", "gauge", "ML signal inference latency, quantiles.",
               [({"quantile": q}, _scaled(signal.get(key), 1e-6))
                for q, key in (("0.5", "inference_us_p50"), ("0.99", "inference_us_p99"))])

    stats = status.get("strategy_stats")
    if isinstance(stats, dict):
        family("flashmm_strategy_events_total", "counter", "Strategy events (requotes, rate limits, ...).",
               [({"event": str(k)}, v) for k, v in sorted(stats.items())])

    info = {k: str(status[k]) for k in ("mode", "trading_state") if isinstance(status.get(k), str)}
    if info:
        family("flashmm_node_info", "gauge", "The node's mode and trading state, as labels.", [(info, 1)])

    lines = []
    for name, kind, help_text, samples in families:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        lines += [f"{name}{_labels(labels)} {_format(_number(value))}" for labels, value in samples]
    return "\n".join(lines) + "\n"


def _get(status: dict, path: tuple[str, ...]):
    value = status
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _side(quote) -> str | None:
    return str(quote.get("side")).upper() if isinstance(quote, dict) else None


def _number(value) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    return None


def _scaled(value, factor: float) -> float | None:
    number = _number(value)
    return None if number is None else number * factor


def _format(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


def _labels(labels: dict) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items()) + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
