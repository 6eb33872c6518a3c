"""The HTTP guard in front of the workbench's local servers (`wb serve`; any ASGI app can use it).

It refuses what a web page in the user's browser could send (a foreign `Origin`, a foreign `Host` on a
loopback server, which is what DNS rebinding looks like, any body that is not `application/json`, CORS
preflights), caps the body while reading it (413), and turns an unexpected exception into a JSON 500
that names nothing internal. `json_body` parses a request body the same way for every route.

    app = guard(app, max_body_bytes=2 << 20, allowed_hosts=LOOPBACK_HOSTS)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
BODY_METHODS = ("POST", "PUT", "PATCH", "DELETE")
log = logging.getLogger("workbench.http")


class BadRequest(ValueError):
    """A request the server refuses with 400; the message names the field and says what was expected."""


def json_body(raw: bytes) -> object:
    """The request body as JSON; BadRequest for invalid JSON, NaN/Infinity (which Python's json accepts)
    and nesting too deep to parse."""
    def refuse(token: str) -> float:
        raise BadRequest(f"the body holds {token}, which is not a JSON number")

    try:
        return json.loads(raw, parse_constant=refuse)
    except BadRequest:
        raise
    except RecursionError:
        raise BadRequest("the body is nested too deeply") from None
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        raise BadRequest("the body is not valid JSON") from None


def host_name(host: str) -> str:
    """The name part of a Host header: `127.0.0.1:8000` -> `127.0.0.1`, `[::1]:8000` -> `::1`."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback(host: str) -> bool:
    return host_name(host) in LOOPBACK_HOSTS


class Guarded:
    """An ASGI app behind the checks above; `state` is the wrapped app's (starlette's `app.state`)."""

    def __init__(self, app, handle):
        self.app = app
        self.state = getattr(app, "state", None)
        self._handle = handle

    async def __call__(self, scope, receive, send) -> None:
        await self._handle(scope, receive, send)


def guard(app, max_body_bytes: int, allowed_hosts: Iterable[str] | None = None) -> Guarded:
    """`app` behind the checks above. `allowed_hosts` (names, no ports) limits the Host header: pass
    `LOOPBACK_HOSTS` for a server bound to loopback; None accepts any (a server bound to a LAN address)."""
    allowed = None if allowed_hosts is None else {host_name(h) for h in allowed_hosts}

    async def guarded(scope, receive, send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        headers: dict[str, str] = {}
        for key, value in scope["headers"]:
            headers[key.decode("latin-1").lower()] = value.decode("latin-1")
        refusal = _refusal(scope, headers, allowed, max_body_bytes)
        if refusal is not None:
            await _send_error(send, *refusal)
            return
        if scope["method"] in BODY_METHODS:
            body = await _read_body(receive, max_body_bytes)
            if body is None:  # the client left mid-body: nobody to answer
                return
            if isinstance(body, tuple):
                await _send_error(send, *body)
                return
            receive = _replay(body, receive)
        started = False

        async def tracked_send(message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await app(scope, receive, tracked_send)
        except Exception:  # noqa: BLE001 - the client gets a bare 500; the log gets the traceback
            log.exception("unexpected error serving %s %s", scope["method"], scope["path"])
            if not started:
                await _send_error(send, 500, "internal server error", "server_error")

    return Guarded(app, guarded)


def _refusal(scope, headers: dict[str, str], allowed: set[str] | None,
             max_body_bytes: int) -> tuple[int, str, str] | None:
    """(status, message, type) when the request is refused before its body is read, else None."""
    host = headers.get("host", "")
    if allowed is not None and host_name(host) not in allowed:
        return 403, "the Host header does not name this server", "permission_error"
    origin = headers.get("origin")
    if origin is not None and origin.lower() != f"{scope.get('scheme', 'http')}://{host}".lower():
        return 403, "cross-origin requests are refused", "permission_error"
    if scope["method"] == "OPTIONS":
        return 405, "preflight (OPTIONS) requests are refused: this server allows no cross-origin calls", \
            "invalid_request_error"
    if scope["method"] not in BODY_METHODS:
        return None
    media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        return 415, "the body must be JSON sent with Content-Type: application/json", "invalid_request_error"
    length = headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            return 400, "the Content-Length header must be a number of bytes", "invalid_request_error"
        if int(length) > max_body_bytes:
            return 413, f"the body is larger than this server's limit of {max_body_bytes:,} bytes", \
                "invalid_request_error"
    return None


async def _read_body(receive, limit: int) -> bytes | tuple[int, str, str] | None:
    """The whole body, a 413 refusal once it passes `limit` bytes (chunked bodies too), or None when the
    client disconnected."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return 413, f"the body is larger than this server's limit of {limit:,} bytes", "invalid_request_error"
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive):
    """A `receive` that hands the app the body already read, then the client's later messages (the
    disconnect that cancels work for a client that left)."""
    sent = False

    async def replayed():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _send_error(send, status: int, message: str, kind: str) -> None:
    payload = json.dumps({"error": {"message": message, "type": kind, "code": status}}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})
