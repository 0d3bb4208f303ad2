"""The middleware: the request's context (who, from where) for capture and
for events. Every SQL statement the request runs on any database connection
is sent with ``SELECT trailmark.set_context(...)`` in front of it (or
``set_config('trailmark.*', ..., true)`` where capture predates that
function: see `trailmark._pgcontext`), in the same round trip, so the capture triggers see the actor in autocommit and
inside ``atomic`` alike (bulk updates, ``queryset.update()`` and raw SQL
included). Needs the psycopg 3 backend (Django's default binding)."""

from __future__ import annotations

from django.db import DatabaseError, connections, transaction

from .. import _context, _pgcontext
from .._ip import client_ip
from . import conf

_SKIP = ("SAVEPOINT", "RELEASE", "ROLLBACK", "COMMIT", "BEGIN", "START", "SET ", "SHOW")


def context_from_request(request, settings: conf.Settings) -> dict[str, str]:
    """The context of one request (the client IP through trusted proxies
    only)."""
    meta = request.META
    user = getattr(request, "user", None)
    ctx = {
        "ip": client_ip(
            meta.get("REMOTE_ADDR"),
            meta.get("HTTP_X_FORWARDED_FOR"),
            meta.get("HTTP_FORWARDED"),
            settings.trusted,
        ),
        "user_agent": meta.get("HTTP_USER_AGENT"),
        "request_id": meta.get("HTTP_X_REQUEST_ID"),
        "tenant": settings.tenant,
    }
    if user is not None and user.is_authenticated:
        ctx.update(actor_id=str(user.pk), actor_type="user", actor_name=user.get_username())
    session = getattr(request, "session", None)
    if session is not None and session.session_key:
        ctx["session_id"] = session.session_key
    return {k: v for k, v in ctx.items() if v}


def _has_set_context(context):
    """Whether the connection's database has ``trailmark.set_context``
    (`_pgcontext.has_set_context`: kept with the connection)."""
    wrapper = context["connection"]
    if not hasattr(wrapper, "_trailmark"):
        wrapper._trailmark = {}

    def ask():
        raw = context["cursor"].cursor
        raw.execute(_pgcontext.CHECK)
        return raw.fetchone()[0]

    return _pgcontext.has_set_context(wrapper._trailmark, ask)


def _prefix(ctx, named, set_context=False):
    items = [(k, str(ctx[k])) for k in _context.CONTEXT_KEYS if ctx.get(k)]
    if set_context:
        if named:
            return "SELECT trailmark.set_context(%(trailmark_context)s::jsonb); ", {"trailmark_context": _pgcontext.as_json(items)}
        return "SELECT trailmark.set_context(%s::jsonb); ", [_pgcontext.as_json(items)]
    if named:
        sql = ", ".join(f"set_config('trailmark.{k}', %(trailmark_{k})s, true)" for k, _ in items)
        return f"SELECT {sql}; ", {f"trailmark_{k}": v for k, v in items}
    sql = ", ".join(f"set_config('trailmark.{k}', %s, true)" for k, _ in items)
    return f"SELECT {sql}; ", [v for _, v in items]


def _wrapper(ctx):
    def wrapper(execute, sql, params, many, context):
        if not ctx or sql.lstrip().upper().startswith(_SKIP):
            return execute(sql, params, many, context)
        set_context = _has_set_context(context)
        if many:
            # executemany cannot carry a prefix: set the context first, in one
            # transaction with the statements.
            prefix, values = _prefix(ctx, False, set_context)
            with transaction.atomic(using=context["connection"].alias):
                context["cursor"].cursor.execute(prefix.rstrip("; "), values)
                return execute(sql, params, many, context)
        named = isinstance(params, dict)
        prefix, values = _prefix(ctx, named, set_context)
        if params is None:
            # With parameters present, a literal % must be doubled.
            sql, params = sql.replace("%", "%%"), ([] if not named else {})
        params = {**values, **params} if named else [*values, *params]
        result = execute(prefix + sql, params, many, context)
        # The cursor shows the first statement's result: move to the
        # application's own statement.
        raw = context["cursor"].cursor
        if hasattr(raw, "nextset"):
            raw.nextset()
        return result

    return wrapper


class TrailmarkMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        settings = conf.get()
        if not settings.enabled:
            return self.get_response(request)
        ctx = context_from_request(request, settings)
        token = _context.set_context(**ctx)
        wrappers = [connections[alias].execute_wrapper(_wrapper(ctx)) for alias in connections]
        try:
            for w in wrappers:
                w.__enter__()
            return self.get_response(request)
        finally:
            for w in reversed(wrappers):
                w.__exit__(None, None, None)
            _context.reset_context(token)

    def process_exception(self, request, exception):
        """A write that failed and rolled back: an event with
        ``outcome = failure``, the error's class and the attempted view."""
        if not isinstance(exception, DatabaseError):
            return None
        client = conf.client()
        if client is None:
            return None
        match = getattr(request, "resolver_match", None)
        view = (match.view_name if match else None) or request.method.lower()
        ctx = _context.current()
        actor = (
            {"id": ctx["actor_id"], "type": ctx.get("actor_type", "user"), **({"name": ctx["actor_name"]} if ctx.get("actor_name") else {})}
            if ctx.get("actor_id")
            else {"id": "anonymous", "type": "anonymous"}
        )
        client.record(
            f"{view}.failed",
            actor=actor,
            outcome="failure",
            metadata={
                "error": type(exception).__name__,
                "method": request.method,
                "path": request.path[:500],
                "view": view,
            },
        )
        return None
