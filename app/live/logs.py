"""The node's logs: a JSON log file per session, an audit trail of orders, and no secret in either.

NautilusTrader writes the node's log (human-readable on stdout, one JSON object per line in
`<session>/node.json`: timestamp, trader_id, level, color, component, message). Every Python-side
log call reaches its Rust logger through one function, `nautilus_pyo3.logger_log`, when logging
runs in pyo3 mode, so `node_logging_config` turns that mode on and wraps that function with the
redaction guard: a message that contains registered key material is written with the secret
replaced, whoever built the message (an exception's text and traceback included). The same guard
sits on the stdlib `logging` bridge (the Sei transport logs there), on unhandled-exception hooks
and on the audit trail.

The audit trail (`audit.jsonl`) is one JSON line per order event with both order ids, side, price,
quantity and reason, written and flushed as each event arrives, so it survives a SIGKILL.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
import traceback
from datetime import UTC, datetime
from pathlib import Path

from cosmpy.mnemonic import derive_child_key_from_mnemonic
from nautilus_trader.common.actor import Actor
from nautilus_trader.common.component import Logger
from nautilus_trader.config import ActorConfig, LoggingConfig
from nautilus_trader.core import nautilus_pyo3
from nautilus_trader.model.events import (
    OrderAccepted,
    OrderCanceled,
    OrderCancelRejected,
    OrderDenied,
    OrderExpired,
    OrderFilled,
    OrderPendingCancel,
    OrderRejected,
    OrderSubmitted,
)

from adapters.monaco.keys import derive_evm_key
from adapters.sei.keys import SEI_HD_PATH

NODE_LOG_NAME = "node"  # NautilusTrader appends ".json"
AUDIT_FILE = "audit.jsonl"
REDACTED = "[REDACTED]"
MIN_SECRET_CHARS = 12  # shorter strings would redact ordinary text and protect nothing

_HEX_KEY = re.compile(r"(?:0x)?([0-9a-fA-F]{64})")
# Between mnemonic words: whitespace, or its escaped form as it appears in a repr or JSON string.
_WORD_GAP = r"(?:\s|\\[nrt])+"


class SecretRegistry:
    """Strings that must never be written anywhere, matched loosely enough to catch how they leak.

    A mnemonic is matched whatever whitespace separates its words (a file read with newlines, a
    repr with `\\n`); a hex key in either case, with or without `0x`.
    """

    def __init__(self) -> None:
        self._sources: set[str] = set()
        self._pattern: re.Pattern | None = None
        self._lock = threading.Lock()

    def register(self, secret: str) -> None:
        if len(secret.strip()) < MIN_SECRET_CHARS:
            raise ValueError(f"refusing to register a secret shorter than {MIN_SECRET_CHARS} characters")
        words = secret.split()
        if len(words) == 1:
            hex_key = _HEX_KEY.fullmatch(words[0])
            source = f"(?:0x)?{hex_key.group(1)}" if hex_key else re.escape(words[0])
        else:
            source = _WORD_GAP.join(re.escape(word) for word in words)
        with self._lock:
            self._sources.add(source)
            # Longest first, so a secret that contains another is redacted whole.
            ordered = sorted(self._sources, key=len, reverse=True)
            self._pattern = re.compile("|".join(ordered), re.IGNORECASE)

    def scrub(self, text: str) -> str:
        pattern = self._pattern
        return pattern.sub(REDACTED, text) if pattern is not None and text else text

    def contains(self, text: str) -> bool:
        pattern = self._pattern
        return bool(pattern is not None and text and pattern.search(text))


SECRETS = SecretRegistry()


def register_secret(secret: str) -> None:
    """Never write `secret` (in any log, the audit trail or a crash report) from now on."""
    SECRETS.register(secret)


def redact_token(token: str) -> None:
    """A venue session token or session key, as the Monaco client receives it (`SECRET_SINKS`).
    One too short to redact without redacting ordinary text is reported, never written."""
    if len(token.strip()) >= MIN_SECRET_CHARS:
        SECRETS.register(token)
    else:
        logging.getLogger(__name__).warning(
            "the venue issued a token shorter than %d characters: it cannot be redacted from logs", MIN_SECRET_CHARS)


def register_key_secrets(key_env: str, key_file: str | Path | None) -> None:
    """Register the signing key the node will load: the text of `$key_env` and of `key_file`.

    Call it before the node is built, so nothing can be logged between loading the key and
    registering it. For a mnemonic, the private keys it derives are registered as well (Sei's Cosmos
    path and the EVM path Monaco's wallet uses). Nothing here reports an error: whether the key is
    usable (and the file safe) is the adapter's call, and its errors never carry the secret.
    """
    texts = [os.environ.get(key_env, "")] if key_env else []
    if key_file:
        try:
            texts.append(Path(key_file).expanduser().read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):  # their messages can quote the file's bytes
            pass
    for text in texts:
        if len(text.strip()) < MIN_SECRET_CHARS:
            continue
        SECRETS.register(text)
        words = text.split()
        if len(words) > 1:
            _register_derived_key(" ".join(words))


def _register_derived_key(mnemonic: str) -> None:
    for derive in (lambda: derive_child_key_from_mnemonic(mnemonic, path=SEI_HD_PATH),
                   lambda: derive_evm_key(mnemonic, "the mnemonic")):
        try:
            key = derive()
        except Exception:  # noqa: BLE001 - a library may quote a bad word; the adapter reports bad keys without it
            continue
        SECRETS.register(key.hex())


# -- NautilusTrader's log -------------------------------------------------------------------------


def node_logging_config(session_dir: str | Path, log_level: str) -> LoggingConfig:
    """The node's LoggingConfig: JSON lines in `<session_dir>/node.json`, plain text on stdout.

    It selects pyo3 logging, the mode whose every message passes through the function the
    redaction guard wraps, and installs that guard: one cannot be had without the other.
    NautilusTrader initialises logging once per process, so this only takes effect for the first
    kernel the process builds.
    """
    install_redaction(log_level)
    return LoggingConfig(
        log_level=log_level, log_level_file=log_level, log_directory=str(session_dir),
        log_file_name=NODE_LOG_NAME, log_file_format="json", log_colors=sys.stdout.isatty(), use_pyo3=True,
    )


def install_redaction(log_level: str = "INFO") -> None:
    """Guard every way this process writes logs; idempotent."""
    if not getattr(nautilus_pyo3.logger_log, "flashmm_redacting", False):
        nautilus_pyo3.logger_log = _redacting(nautilus_pyo3.logger_log)
    root = logging.getLogger()
    if not any(isinstance(h, _NautilusBridge) for h in root.handlers):
        root.addHandler(_NautilusBridge())
    root.setLevel(_stdlib_level(log_level))
    if not getattr(sys.excepthook, "flashmm_redacting", False):
        sys.excepthook = _redacting_excepthook
        threading.excepthook = _redacting_thread_excepthook


def _redacting(logger_log):
    def logger_log_redacted(level, color, component, message):
        return logger_log(level, color, component, SECRETS.scrub(message) if message else message)

    logger_log_redacted.flashmm_redacting = True
    return logger_log_redacted


def _stdlib_level(log_level: str) -> int:
    name = log_level.upper()
    level = logging.getLevelName("WARNING" if name == "WARN" else name)
    if not isinstance(level, int):
        raise ValueError(f"log level {log_level!r} is not one of DEBUG, INFO, WARNING, ERROR")
    return level


class _NautilusBridge(logging.Handler):
    """Sends stdlib `logging` records (the Sei transport, asyncio, websockets) to the node's log."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))  # exception tracebacks are appended
        self._loggers: dict[str, Logger] = {}

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = SECRETS.scrub(self.format(record))
            logger = self._loggers.get(record.name)
            if logger is None:
                logger = self._loggers[record.name] = Logger(record.name or "root")
            if record.levelno >= logging.ERROR:
                logger.error(text)
            elif record.levelno >= logging.WARNING:
                logger.warning(text)
            elif record.levelno >= logging.INFO:
                logger.info(text)
            else:
                logger.debug(text)
        except Exception:  # noqa: BLE001 - logging.Handler.handleError would print the record unredacted
            sys.stderr.write(f"flashmm: could not log a record from {record.name}\n")


def _redacting_excepthook(exc_type, exc, tb) -> None:
    sys.stderr.write(SECRETS.scrub("".join(traceback.format_exception(exc_type, exc, tb))))


def _redacting_thread_excepthook(args: threading.ExceptHookArgs) -> None:
    text = "".join(traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback))
    name = args.thread.name if args.thread is not None else "?"
    sys.stderr.write(SECRETS.scrub(f"exception in thread {name}:\n{text}"))


# -- the audit trail ------------------------------------------------------------------------------

_KINDS = {
    OrderSubmitted: "submit", OrderAccepted: "accept", OrderRejected: "reject", OrderDenied: "deny",
    OrderPendingCancel: "cancel_request", OrderCanceled: "cancel", OrderCancelRejected: "cancel_reject",
    OrderFilled: "fill", OrderExpired: "expire",
}


class AuditLogConfig(ActorConfig, frozen=True):
    path: str  # <session dir>/audit.jsonl


class AuditLog(Actor):
    """One JSON line per order event, appended and flushed as it arrives.

    It listens on the message bus (`events.order.*`: every strategy's order events) from start to
    dispose, not start to stop: the orders cancelled during a graceful stop are confirmed after the
    actors have stopped, and they belong in the trail.
    """

    def __init__(self, config: AuditLogConfig) -> None:
        super().__init__(config)
        self.path = Path(config.path)
        self._file = None

    def on_start(self) -> None:
        if self._file is None:
            self._file = self.path.open("a", encoding="utf-8")
            self.msgbus.subscribe(topic="events.order.*", handler=self.record)

    def on_dispose(self) -> None:
        if self._file is not None:
            self.msgbus.unsubscribe(topic="events.order.*", handler=self.record)
            self._file.close()
            self._file = None

    def record(self, event) -> None:
        kind = _KINDS.get(type(event))
        if kind is None or self._file is None:
            return
        self._file.write(json.dumps(audit_record(kind, event, self.cache.order(event.client_order_id))) + "\n")
        self._file.flush()


def audit_record(kind: str, event, order) -> dict:
    """The audit line for `event`; `order` (from the cache, may be None) supplies side, price and
    quantity for events that do not carry them. Free text is scrubbed of secrets."""
    venue_order_id = getattr(event, "venue_order_id", None) or (order.venue_order_id if order is not None else None)
    record = {
        "ts": datetime.fromtimestamp(event.ts_event / 1e9, tz=UTC).isoformat(),
        "ts_event_ns": event.ts_event,
        "event": kind,
        "client_order_id": event.client_order_id.value,
        "venue_order_id": venue_order_id.value if venue_order_id is not None else None,
        "strategy_id": event.strategy_id.value,
        "instrument_id": event.instrument_id.value,
        "side": order.side_string() if order is not None else None,
        "price": str(order.price) if order is not None and order.has_price else None,
        "qty": str(order.quantity) if order is not None else None,
    }
    if isinstance(event, OrderFilled):
        record.update(
            side=event.order_side.name, price=str(event.last_px), qty=str(event.last_qty),
            trade_id=event.trade_id.value, liquidity=event.liquidity_side.name, commission=str(event.commission),
        )
    if isinstance(event, (OrderRejected, OrderDenied, OrderCancelRejected)):
        record["reason"] = SECRETS.scrub(str(event.reason))
    return record
