"""TLS contexts for the node's port and its peer links, and auth-failure logging.

TLS comes in three strengths, chosen by flags:

- ``--tls-cert/--tls-key``: every protocol on the port is behind TLS. Peers
  trust exactly that certificate, so all servers share one (uhaha's model).
- ``--tls-ca``: peers' certificates must chain to this CA instead, so each
  server may have its own certificate (with its advertised address in the
  subject alternative names: peers check it).
- ``--tls-client-certs``: mutual TLS. Every connection, clients' and peers',
  must present a certificate signed by ``--tls-ca``; peers present their own.

A wrong secret is logged with where it came from, never with what was sent,
and at most once per ``interval`` seconds and protocol at the warning level (the rest at
debug), so a password-guessing client cannot flood the log.
"""

from __future__ import annotations

import hmac
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from .cli import Options
from .frontdoor import StartupError

__all__ = ["AuthFailures", "bearer_checker", "client_context", "require_bearer", "server_context"]

log = logging.getLogger("uhaha.security")


def server_context(opts: Options) -> ssl.SSLContext | None:
    """The context the port serves TLS with, or None without ``--tls-cert``."""
    if not opts.tls_cert:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    _own_certificate(ctx, opts)
    if opts.tls_client_certs:
        _trust(ctx, opts.tls_ca, "--tls-ca")
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_context(opts: Options) -> ssl.SSLContext | None:
    """The context peer links and joins connect with, or None without TLS."""
    if not opts.tls_cert:
        return None
    ctx = ssl.create_default_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if opts.tls_ca:
        _trust(ctx, opts.tls_ca, "--tls-ca")
    else:
        _trust(ctx, opts.tls_cert, "--tls-cert")
    if opts.tls_client_certs:
        _own_certificate(ctx, opts)
    return ctx


def _own_certificate(ctx: ssl.SSLContext, opts: Options) -> None:
    try:
        ctx.load_cert_chain(opts.tls_cert, opts.tls_key)
    except (OSError, ssl.SSLError) as e:
        raise StartupError(f"cannot load the TLS certificate or key: {_reason(e)}") from None


def _trust(ctx: ssl.SSLContext, path: str, flag: str) -> None:
    try:
        ctx.load_verify_locations(path)
    except (OSError, ssl.SSLError) as e:
        raise StartupError(f"cannot load {flag} {path}: {_reason(e)}") from None


def _reason(e: OSError | ssl.SSLError) -> str:
    if isinstance(e, ssl.SSLError):
        return e.reason or str(e)
    return e.strerror or str(e)


class AuthFailures:
    """Logs failed authentications: who and over what, never the secret tried."""

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self.count = 0
        self._last_warning: dict[str, float] = {}  # per protocol

    def failed(self, protocol: str, remote: str) -> None:
        """A client at ``remote`` sent a wrong or no secret over ``protocol``."""
        self.count += 1
        now = time.monotonic()
        if now - self._last_warning.get(protocol, -self.interval) >= self.interval:
            self._last_warning[protocol] = now
            log.warning(
                "authentication failed: wrong or missing secret over %s from %s "
                "(%d so far; more within %gs at debug level)",
                protocol,
                remote,
                self.count,
                self.interval,
            )
        else:
            log.debug("authentication failed over %s from %s", protocol, remote)


ASGIApp = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]


def bearer_checker(
    secret: str, on_failure: Callable[[str], None] | None = None
) -> Callable[[Mapping[str, Any]], bool]:
    """``check(scope)``: whether an HTTP request (its ASGI scope) carries
    ``Authorization: Bearer <secret>``, compared in constant time; always true
    without a secret. A wrong secret (not a missing one) is reported to
    ``on_failure(remote)``. Every HTTP route of a node checks through this."""
    expected = secret.encode()

    def check(scope: Mapping[str, Any]) -> bool:
        if not expected:
            return True
        header = b""
        for key, value in scope.get("headers", ()):
            if key == b"authorization":
                header = value
                break
        scheme, _, token = header.partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(token, expected):
            return True
        if header and on_failure is not None:
            client = scope.get("client")
            on_failure(f"{client[0]}:{client[1]}" if client else "?")
        return False

    return check


def require_bearer(
    app: ASGIApp, secret: str, on_failure: Callable[[str], None] | None = None
) -> ASGIApp:
    """``app`` behind ``Authorization: Bearer <secret>`` (401 JSON otherwise;
    a WebSocket is closed with code 1008, policy violation)."""
    authorized = bearer_checker(secret, on_failure)

    async def guarded(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket") or authorized(scope):
            await app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = b'{"error":"NOAUTH Authentication required."}'
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b"Bearer"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return guarded
