"""Trailmark capture context for SQLAlchemy sessions, and an ASGI middleware
for FastAPI / Starlette (the whole integration).

* ``context`` is a ContextVar: set per request by ``TrailmarkContext``, it
  follows the request into async code and into the threadpool FastAPI runs
  sync endpoints in (both copy the context), never into another request.
* ``install()`` hooks ``Session.after_begin``: whenever a session starts a
  transaction on a connection (a pooled one included), one
  ``SELECT set_config('trailmark.*', ..., true)`` runs first in that same
  transaction. ``true`` makes the values end with it, so the pooled
  connection carries nothing into the next request.
* Code that writes through ``engine.begin()`` instead of a Session calls
  ``apply(connection)`` once inside its transaction.
"""

from contextvars import ContextVar

from sqlalchemy import event, text
from sqlalchemy.orm import Session

context = ContextVar("trailmark_context", default=None)

NAMES = (
    "actor_id",
    "actor_type",
    "actor_name",
    "ip",
    "user_agent",
    "request_id",
    "session_id",
    "tenant",
    "reason",
)


def apply(connection, ctx=None):
    """Sets the context in the connection's current transaction."""
    ctx = context.get() if ctx is None else ctx
    items = [(k, str(ctx[k])) for k in NAMES if ctx and ctx.get(k)]
    if not items:
        return
    sql = ", ".join(f"set_config('trailmark.{k}', :{k}, true)" for k, _ in items)
    connection.execute(text(f"SELECT {sql}"), dict(items))


def install(session_class=Session):
    """Sets the context at the start of every session transaction."""

    @event.listens_for(session_class, "after_begin")
    def _after_begin(session, transaction, connection):
        apply(connection)

    return _after_begin


class TrailmarkContext:
    """ASGI middleware: ``get_context(scope)`` returns the request's context
    (who is signed in comes from your authentication)."""

    def __init__(self, app, get_context):
        self.app = app
        self.get_context = get_context

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        token = context.set(self.get_context(scope))
        try:
            await self.app(scope, receive, send)
        finally:
            context.reset(token)


def context_from_scope(scope):
    """IP, user agent and request id from the request; the actor from an
    ``X-User`` header set by an authenticating proxy (replace with your own)."""
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
    ctx = {
        "ip": (scope.get("client") or (None,))[0],
        "user_agent": headers.get("user-agent"),
        "request_id": headers.get("x-request-id"),
    }
    if headers.get("x-user"):
        ctx.update(actor_id=headers["x-user"], actor_type="user")
    return ctx
