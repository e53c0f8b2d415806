"""Logging in to Monaco with the wallet, keeping the session fresh, and signing requests with it.

The login is a challenge the wallet signs ([3P] POST /api/v1/auth/challenge, then /verify; [RS]
tests/auth.rs): the venue hands out a `message` and a `nonce`, the wallet signs the message
(EIP-191 personal_sign, or EIP-712 typed data when the wire says so), and the venue answers with a
session. What a session is depends on `Wire.request_auth`:

- `bearer`: an access token and a refresh token ([RS] 0.8.1, [TS] authState.accessToken /
  refreshToken / expiresAt); each request carries `Authorization: Bearer <access token>`, and the
  refresh exchange returns fresh tokens (the [RS] test insists a refresh rotates them).
- `session_key`: an ed25519 key generated here and registered at login ([RS] 0.8.7+ "noncustodial
  session-key auth"); each request carries X-Monaco-PublicKey / -Timestamp / -Signature over
  `wire.signing_string`, and a refresh only extends the session's expiry.

The session is refreshed `refresh_before_s` before it expires, and a 401 leads to one fresh login
(single-flight: requests that failed together log in once). Every token and session key is handed
to `secret_sink` as soon as it exists, so the node's logs can never print it; none of them is in a
repr or an exception raised here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import nacl.signing

from adapters.monaco.errors import AuthFailed, VenueError
from adapters.monaco.keys import EvmSigner
from adapters.monaco.wire import SESSION_HEADERS, Codec, Session, WireError, signing_string

if TYPE_CHECKING:
    from adapters.monaco.rest import MonacoRest

log = logging.getLogger(__name__)

DEFAULT_SESSION_S = 900.0  # assumed lifetime when the venue names no expiry (UNCONFIRMED)


class MonacoAuth:
    def __init__(
        self, codec: Codec, signer: EvmSigner, *, chain_id: int, client_id: str, refresh_before_s: float = 60.0,
        secret_sink: Callable[[str], None] = lambda secret: None,
    ) -> None:
        self.codec = codec
        self.signer = signer
        self.chain_id = chain_id
        self.client_id = client_id
        self.refresh_before_s = refresh_before_s
        self._sink = secret_sink
        self._session: Session | None = None
        self._key: nacl.signing.SigningKey | None = None
        self._public_hex: str | None = None
        self.expires_ns = 0
        self.generation = 0  # bumps at every login: requests that saw a 401 under an older one retry
        self._lock = asyncio.Lock()
        self.stats = {"logins": 0, "refreshes": 0, "relogins": 0}

    def __repr__(self) -> str:
        return f"MonacoAuth(address={self.signer.address!r}, mode={self.mode!r}, logged_in={self.logged_in})"

    @property
    def mode(self) -> str:
        return self.codec.wire.request_auth

    @property
    def logged_in(self) -> bool:
        return self._session is not None

    @property
    def user_id(self) -> str | None:
        return self._session.user_id if self._session else None

    # -- login, refresh ---------------------------------------------------------------------------

    async def login(self, rest: MonacoRest) -> None:
        async with self._lock:
            await self._login(rest)

    async def _login(self, rest: MonacoRest) -> None:
        key_hex = None
        key = None
        if self.mode == "session_key":
            key = nacl.signing.SigningKey.generate()
            self._sink(bytes(key).hex())
            key_hex = key.verify_key.encode().hex()
        c = self.codec
        answer = await rest.call("challenge", body=c.challenge_request(self.signer.address, self.chain_id,
                                                                       self.client_id, key_hex), auth=False)
        try:
            challenge = c.read_challenge(answer)
        except WireError as exc:
            raise VenueError(f"login: {exc}") from None
        if c.wire.login_signature == "eip712":
            signature = self.signer.sign_typed(c.login_typed_data(self.signer.address, challenge.nonce,
                                                                  self.chain_id, key_hex))
        else:
            signature = self.signer.sign_personal(challenge.message)
        answer = await rest.call("verify", body=c.verify_request(self.signer.address, challenge.nonce, signature,
                                                                 self.chain_id, self.client_id, key_hex), auth=False)
        try:
            session = c.read_session(answer, "verify_response")
        except WireError as exc:
            raise VenueError(f"login: {exc}") from None
        if self.mode == "bearer" and not session.access_token:
            raise AuthFailed("login: the venue's answer holds no access token (is wire.request_auth right?)")
        self._remember(session)
        self._session, self._key, self._public_hex = session, key, key_hex
        self.generation += 1
        self.stats["logins"] += 1
        log.info("logged in to Monaco as %s (user %s), session until %s", self.signer.address, session.user_id,
                 time.strftime("%H:%M:%S", time.gmtime(self.expires_ns / 1e9)))

    def _remember(self, session: Session) -> None:
        for token in (session.access_token, session.refresh_token):
            if token:
                self._sink(token)
        lifetime = session.expires_ns or time.time_ns() + int(DEFAULT_SESSION_S * 1e9)
        self.expires_ns = lifetime

    async def ensure_fresh(self, rest: MonacoRest) -> None:
        """Refresh (or log in again) if the session ends within `refresh_before_s`."""
        if self._session is not None and time.time_ns() < self.expires_ns - self.refresh_before_s * 1e9:
            return
        async with self._lock:
            if self._session is not None and time.time_ns() < self.expires_ns - self.refresh_before_s * 1e9:
                return  # another request refreshed it while this one waited
            if self._session is None:
                await self._login(rest)
                return
            try:
                await self._refresh(rest)
            except (VenueError, WireError) as exc:
                log.warning("session refresh failed (%s); logging in again", exc)
                await self._login(rest)

    async def _refresh(self, rest: MonacoRest) -> None:
        c = self.codec
        if self.mode == "bearer":
            answer = await rest.call("refresh", body=c.refresh_request(self._session.refresh_token), auth=False)
            session = c.read_session(answer, "refresh_response")
            if not session.access_token:
                raise VenueError("refresh: no access token in the answer")
            session = Session(session.access_token, session.refresh_token or self._session.refresh_token,
                              session.expires_ns, self._session.user_id)
        else:
            answer = await rest.call("refresh", body=None, auth=True, refreshing=True)
            renewed = c.read_session(answer, "refresh_response")
            session = Session(None, None, renewed.expires_ns, self._session.user_id)
        self._remember(session)
        self._session = session
        self.stats["refreshes"] += 1

    async def relogin(self, rest: MonacoRest, seen_generation: int) -> None:
        """After a 401: log in again, unless another request already did since `seen_generation`."""
        async with self._lock:
            if self.generation != seen_generation:
                return
            self.stats["relogins"] += 1
            log.warning("Monaco answered 401: logging in again")
            await self._login(rest)

    async def revoke(self, rest: MonacoRest) -> None:
        """End the session on the venue (a graceful stop); best effort."""
        if self._session is None:
            return
        try:
            await rest.call("revoke", body=None, auth=True)
        except VenueError as exc:
            log.info("session revoke failed (%s); it expires on its own", exc)
        self._session = None

    # -- signing requests -------------------------------------------------------------------------

    def headers(self, method: str, path_with_query: str, body: bytes) -> dict[str, str]:
        if self._session is None:
            raise AuthFailed("not logged in")
        if self.mode == "bearer":
            return {"Authorization": f"Bearer {self._session.access_token}"}
        ts = time.time_ns() // 1_000_000
        signature = self._key.sign(signing_string(method, path_with_query, ts, body)).signature
        return dict(zip(SESSION_HEADERS, (self._public_hex, str(ts), self.codec.session_signature(signature)),
                        strict=True))

    def ws_auth_fields(self, ws_path: str) -> dict[str, str]:
        """What the WebSocket's auth frame carries (UNCONFIRMED shape: see wire.Wire.ws_auth)."""
        if self._session is None:
            raise AuthFailed("not logged in")
        if self.mode == "bearer":
            return {"token": self._session.access_token}
        headers = self.headers("GET", ws_path, b"")
        return {"public_key": headers[SESSION_HEADERS[0]], "timestamp": headers[SESSION_HEADERS[1]],
                "signature": headers[SESSION_HEADERS[2]]}
