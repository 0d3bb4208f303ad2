"""ASGI middleware (FastAPI, Starlette): the request context from each
request — the client IP through trusted proxies only, user agent, request
id, and the actor your authentication names — for capture (see
`trailmark.sqlalchemy`) and for events."""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Iterable, Mapping

from ._context import reset_context, set_context
from ._ip import client_ip, networks

#: Answers the signed-in user of a request: None, or a mapping with
#: ``actor_id`` (and optionally ``actor_type``, ``actor_name``,
#: ``session_id``, ``tenant``).
GetUser = Callable[[Mapping[str, Any]], Mapping[str, str] | None]


def context_from_scope(
    scope: Mapping[str, Any], trusted=(), get_user: GetUser | None = None, tenant: str | None = None
) -> dict[str, str]:
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    peer = (scope.get("client") or (None,))[0]
    ctx: dict[str, Any] = {
        "ip": client_ip(peer, headers.get("x-forwarded-for"), headers.get("forwarded"), trusted),
        "user_agent": headers.get("user-agent"),
        "request_id": headers.get("x-request-id"),
        "tenant": tenant,
    }
    user = get_user(scope) if get_user else None
    if user:
        ctx.update(actor_type="user")
        ctx.update(user)
    return {k: str(v) for k, v in ctx.items() if v}


class TrailmarkMiddleware:
    """``app.add_middleware(TrailmarkMiddleware, get_user=..., trusted_proxies=[...])``.
    ``enabled=False`` sets no context (nothing is captured with an actor)."""

    def __init__(
        self,
        app: Callable[..., Awaitable[None]],
        get_user: GetUser | None = None,
        trusted_proxies: Iterable[str] = (),
        tenant: str | None = None,
        enabled: bool = True,
    ) -> None:
        self.app = app
        self.get_user = get_user
        self.trusted = networks(trusted_proxies)
        self.tenant = tenant
        self.enabled = enabled

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not self.enabled:
            return await self.app(scope, receive, send)
        token = set_context(**context_from_scope(scope, self.trusted, self.get_user, self.tenant))
        try:
            await self.app(scope, receive, send)
        finally:
            reset_context(token)
