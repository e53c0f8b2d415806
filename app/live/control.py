"""Operator control of a running node: `flashmm live status|halt|resume`.

The node listens on a Unix socket, `<session dir>/control.sock`, mode 0600 in a 0700 directory:
only its own user (and root) can reach it, and nothing is exposed on the network. On top of that,
every request carries a token the node wrote to `control.token` (mode 0600) when it started, so
a request must come from someone who can read that session's files; a wrong token is refused and
logged, without the token.

Protocol: one JSON line `{"token": ..., "command": "status"|"halt"|"resume", "reason": ...}`, one
JSON line back (`{"ok": true, ...}` or `{"ok": false, "error": ...}`), then the node closes.

`halt` is the strategy's kill switch (`MarketMaker.halt`: cancel every quote, then the
`FlashMM.halt` bus endpoint sets the risk engine HALTED), so an operator halt and an automatic
one are the same path. `resume` sets trading ACTIVE again and lets the strategy quote. A halt is
recorded in the state dir (`halted.json`) until resumed, so a node restarted while halted starts
halted.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import secrets
import socket
import stat
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nautilus_trader.model.enums import TradingState

from app.live.logs import register_secret
from app.live.ops import close_quietly
from app.live.status import write_json_atomic

log = logging.getLogger("flashmm.control")

SOCKET_NAME = "control.sock"
TOKEN_NAME = "control.token"
HALT_FILE = "halted.json"  # in the state dir, across sessions
COMMANDS = ("status", "halt", "resume")
MAX_REQUEST_BYTES = 64 * 1024
REQUEST_TIMEOUT_S = 5.0
# sockaddr_un.sun_path is 108 bytes on Linux, including the terminating NUL.
MAX_SOCKET_PATH_BYTES = 107

Handler = Callable[[dict], dict]


class ControlError(RuntimeError):
    """A control command could not be delivered or the node refused it; the message says why."""


class NodeNotRunning(ControlError):
    """No node is listening under the state directory."""


def prepare_control_dir(session_dir: Path) -> tuple[Path, str]:
    """Make `session_dir` private (0700), write a fresh token to `control.token` (0600).

    Returns the socket path and the token. The token is registered as a secret, so it is never
    logged.
    """
    session_dir = Path(session_dir)
    os.chmod(session_dir, 0o700)
    token = secrets.token_urlsafe(32)
    register_secret(token)
    fd = os.open(session_dir / TOKEN_NAME, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return session_dir / SOCKET_NAME, token


@dataclass
class ControlServer:
    server: asyncio.Server
    path: Path

    async def close(self) -> None:
        self.server.close()
        await self.server.wait_closed()
        self.path.unlink(missing_ok=True)


async def start_control_server(path: str | Path, token: str, handlers: dict[str, Handler]) -> ControlServer:
    """Listen on the Unix socket `path`; requests with `token` run `handlers[command](request)`.

    The socket's directory must be private (no group or other access): the socket is created in
    it before its mode is set to 0600, and it must never be reachable by anyone else meanwhile.
    """
    path = Path(path)
    _check_socket_path(path)
    directory_mode = stat.S_IMODE(path.parent.stat().st_mode)
    if directory_mode & 0o077:
        raise ControlError(
            f"{path.parent} has mode {directory_mode:04o}; the control socket needs a directory only its owner "
            f"can enter (chmod 700 {path.parent})"
        )
    if path.exists():
        if _answers(path):
            raise ControlError(f"another node is already listening on {path}")
        path.unlink()  # left behind by a node that died

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            answer = await _serve_request(reader, writer, token, handlers)
            writer.write(json.dumps(answer, default=str).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away
        except Exception:  # noqa: BLE001 - one bad request must not take the control path down
            log.exception("control: request failed")
        finally:
            await close_quietly(writer)

    server = await asyncio.start_unix_server(handle, path=str(path), limit=MAX_REQUEST_BYTES)
    os.chmod(path, 0o600)
    log.info("control: listening on %s", path)
    return ControlServer(server, path)


async def _serve_request(reader, writer, token: str, handlers: dict[str, Handler]) -> dict:
    try:
        line = await asyncio.wait_for(reader.readuntil(b"\n"), REQUEST_TIMEOUT_S)
        request = json.loads(line)
    except TimeoutError:
        return {"ok": False, "error": "no request line received in time"}
    except (asyncio.LimitOverrunError, ValueError):
        return {"ok": False, "error": f"a request is one JSON object on one line, at most {MAX_REQUEST_BYTES} bytes"}
    if not isinstance(request, dict):
        return {"ok": False, "error": "a request is one JSON object on one line"}
    sent = request.pop("token", None)
    # surrogatepass: JSON may carry lone surrogates, which must be refused, not crash the comparison.
    if not isinstance(sent, str) or not hmac.compare_digest(sent.encode("utf-8", "surrogatepass"), token.encode()):
        log.warning("control: refused a request with a %s token from %s", "wrong" if sent else "missing",
                    _peer(writer))
        return {"ok": False, "error": "unauthorized: wrong or missing token"}
    command = request.get("command")
    handler = handlers.get(command) if isinstance(command, str) else None
    if handler is None:
        return {"ok": False, "error": f"unknown command {str(command)[:40]!r}; known: {', '.join(sorted(handlers))}"}
    log.info("control: %s from %s, reason %r", command, _peer(writer), str(request.get("reason") or "")[:200])
    try:
        return {"ok": True, **handler(request)}
    except Exception as exc:  # noqa: BLE001 - the operator gets the error, the node keeps running
        log.exception("control: %s failed", command)
        return {"ok": False, "error": f"{command} failed: {exc}"}


def _peer(writer: asyncio.StreamWriter) -> str:
    sock = writer.get_extra_info("socket")
    try:
        pid, uid, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    except (AttributeError, OSError):
        return "an unknown peer"
    return f"pid {pid} uid {uid}"


def _check_socket_path(path: Path) -> None:
    if len(os.fsencode(path)) > MAX_SOCKET_PATH_BYTES:
        raise ControlError(
            f"control socket path {path} is {len(os.fsencode(path))} bytes; Unix sockets allow at most "
            f"{MAX_SOCKET_PATH_BYTES}: use a shorter state directory"
        )


def _answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


# -- the node's handlers --------------------------------------------------------------------------


def record_halt(state_dir: Path, reason: str) -> None:
    """Remember a halt across restarts (pass it as `on_halt` to `register_halt_endpoint`, so the
    kill switch's halts are remembered too): a node that crashed or rebooted while halted must come
    back halted, not trading, until an operator resumes it."""
    write_json_atomic(Path(state_dir) / HALT_FILE, {"reason": reason})


def persisted_halt(state_dir: Path) -> str | None:
    """The reason of a halt no operator has resumed yet, or None: a starting node halts with it."""
    try:
        return str(json.loads((Path(state_dir) / HALT_FILE).read_text())["reason"])
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        return f"unreadable {HALT_FILE} in {state_dir}: halted to be safe"


def operator_handlers(status: Callable[[], dict], strategy, risk_engine, state_dir: Path) -> dict[str, Handler]:
    """`status`, `halt` and `resume` for a node running `strategy` (a MarketMaker) and `risk_engine`;
    `resume` also forgets the halt recorded in `state_dir`."""

    def do_status(request: dict) -> dict:
        return {"status": status()}

    def do_halt(request: dict) -> dict:
        was_halted = bool(strategy.halted)
        strategy.halt(f"operator: {request.get('reason') or 'no reason given'}")
        if risk_engine.trading_state != TradingState.HALTED:
            raise ControlError("the strategy halted but the risk engine did not: "
                               "is the FlashMM.halt endpoint registered?")
        return {"halted": True, "was_halted": was_halted, "halt_reason": strategy.halt_reason,
                "trading_state": risk_engine.trading_state.name}

    def do_resume(request: dict) -> dict:
        was_halted = bool(strategy.halted) or risk_engine.trading_state != TradingState.ACTIVE
        risk_engine.set_trading_state(TradingState.ACTIVE)
        strategy.resume_trading()
        (Path(state_dir) / HALT_FILE).unlink(missing_ok=True)
        return {"resumed": was_halted, "trading_state": risk_engine.trading_state.name}

    return {"status": do_status, "halt": do_halt, "resume": do_resume}


# -- the client -----------------------------------------------------------------------------------


def send_command(state_dir: str | Path, command: str, reason: str | None = None, timeout: float = 5.0) -> dict:
    """Send `command` to the newest running node under `state_dir`; returns its answer.

    Sessions are subdirectories of the state dir; the newest socket that accepts a connection
    wins (sockets left by nodes that died refuse connections and are skipped).
    """
    if command not in COMMANDS:
        raise ControlError(f"unknown command {command!r}; known: {', '.join(COMMANDS)}")
    state_dir = Path(state_dir)
    if not state_dir.is_dir():
        raise NodeNotRunning(f"no node is running under {state_dir}: the directory does not exist")
    candidates = [state_dir / SOCKET_NAME, *(d / SOCKET_NAME for d in state_dir.iterdir() if d.is_dir())]
    found = [(mtime, p) for p in candidates if (mtime := _socket_mtime(p)) is not None]
    sockets = [p for _, p in sorted(found, reverse=True)]
    for path in sockets:
        _check_socket_path(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            sock.close()
            continue
        with sock:
            return _exchange(sock, path, command, reason)
    raise NodeNotRunning(
        f"no node is running under {state_dir}"
        + (f" ({len(sockets)} control socket(s) left by stopped nodes)" if sockets else " (no control socket found)")
    )


def _socket_mtime(path: Path) -> float | None:
    """When the socket at `path` was created, or None if there is none (or it just went away)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime if stat.S_ISSOCK(st.st_mode) else None


def _exchange(sock: socket.socket, path: Path, command: str, reason: str | None) -> dict:
    token_file = path.with_name(TOKEN_NAME)
    try:
        token = token_file.read_text().strip()
    except PermissionError:
        raise ControlError(f"cannot read {token_file}: run this as the node's user") from None
    except FileNotFoundError:
        raise ControlError(f"{token_file} is missing: the node's session directory is incomplete") from None
    request = {"token": token, "command": command}
    if reason:
        request["reason"] = reason
    try:
        sock.sendall(json.dumps(request).encode() + b"\n")
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    except TimeoutError:
        raise ControlError(f"the node at {path} did not answer {command!r} in time") from None
    try:
        answer = json.loads(reply)
    except ValueError:
        raise ControlError(f"the node at {path} sent no valid answer to {command!r}") from None
    if not isinstance(answer, dict) or not answer.get("ok"):
        error = answer.get("error") if isinstance(answer, dict) else None
        raise ControlError(f"the node at {path} refused {command!r}: {error or 'no reason given'}")
    return answer
