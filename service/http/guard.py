"""Who is calling, within their rate, allowed here: the guard on every /v1 route."""

from __future__ import annotations

import anyio
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.handlers.base import BaseRouteHandler

from index.settings import AuthMode
from service import auth
from service.http.api_models import ApiError
from service.http.logging_setup import current_request
from service.http.services import Services

CALLER_SCOPE_KEY = "groundwork.caller"


async def authorize(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """Every /v1 route: who is calling (401), within their rate (429), allowed here (403).
    A handler's ``opt`` says ``public`` (no key needed) or the ``role`` it needs (reader)."""
    if handler.opt.get("public"):
        return
    svc: Services = connection.app.state.services
    if svc.settings.auth == AuthMode.off:
        caller = auth.dev_caller()
    else:
        header = connection.headers.get("authorization")
        caller = svc.verified_keys.get(header)
        if caller is None:  # not verified lately: ask the database, off the event loop
            caller = await anyio.to_thread.run_sync(svc.verified_keys.authenticate, svc.groundwork.store, header)
        if caller is None:
            error = "missing_api_key" if not header else "invalid_api_key"
            challenge = 'Bearer realm="groundwork"' + ("" if not header else ', error="invalid_token"')
            raise ApiError(401, error, "an API key is required: send 'Authorization: Bearer gw_...'" if not header
                           else "the API key is invalid or revoked", headers={"WWW-Authenticate": challenge})
    ctx = current_request.get()
    if ctx is not None:
        ctx.key_prefix = caller.prefix
    if caller.key_id is not None:  # dev mode (no keys, loopback only) is never throttled
        _within_rate(svc, caller)
    required = handler.opt.get("role", "reader")
    if not caller.allows(required):
        raise ApiError(403, "forbidden", f"this operation needs the {required} role; the key has {caller.role}")
    connection.scope[CALLER_SCOPE_KEY] = caller  # type: ignore[literal-required]


def _within_rate(svc: Services, caller: auth.KeyInfo) -> None:
    """429 once the key has spent its allowance; counted per key name (the prefix for a key
    without one) so that an operator sees which app is being throttled."""
    decision = svc.limiter.check(caller.prefix)
    if not decision.allowed:
        svc.metrics.rate_limited.inc(key=caller.name or caller.prefix)
        raise ApiError(429, "rate_limited", f"rate limit of {svc.settings.rate_limit_per_minute} requests per minute exceeded",
                       headers={"Retry-After": decision.retry_after_header})


def caller(request: Request, svc: NamedDependency[Services]) -> auth.KeyInfo:
    """The ``caller`` dependency: the key ``authorize`` verified. ``svc`` is unused, and there
    on purpose: a dependency of ``svc`` is resolved after it, whereas two independent ones are
    resolved concurrently, in a task group that spawns two tasks on every request."""
    return request.scope[CALLER_SCOPE_KEY]  # type: ignore[literal-required]
