"""Trailmark capture context for Django (the whole integration).

Add ``"trailmark_context.TrailmarkContextMiddleware"`` to ``MIDDLEWARE`` after
the authentication middleware. Every SQL statement the request runs on any
database connection is sent with ``set_config('trailmark.*', ..., true)`` in
front of it, in the same round trip, so:

* in autocommit (Django's default outside ``atomic``) each statement is its own
  transaction and carries the context with it;
* inside ``atomic`` the context is set again before each statement, so a
  rolled-back savepoint cannot take it away;
* ``bulk_update``, ``queryset.update()``, raw ``cursor.execute`` and signals
  that do not fire are all covered: the database triggers see every row.

Needs the psycopg 3 backend with client-side binding (Django's default), which
sends several statements in one query.
"""

from contextvars import ContextVar

from django.db import connections, transaction

# What the current request is doing, for code that wants to add a reason.
current = ContextVar("trailmark_context", default=None)

_NAMES = (
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
_SKIP = ("SAVEPOINT", "RELEASE", "ROLLBACK", "COMMIT", "BEGIN", "START", "SET ", "SHOW")


def context_from_request(request):
    """The context of one request (override to add a tenant or a reason)."""
    user = getattr(request, "user", None)
    ctx = {
        "ip": request.META.get("REMOTE_ADDR"),
        "user_agent": request.META.get("HTTP_USER_AGENT"),
        "request_id": request.META.get("HTTP_X_REQUEST_ID"),
    }
    if user is not None and user.is_authenticated:
        ctx.update(
            actor_id=str(user.pk), actor_type="user", actor_name=user.get_username()
        )
    session = getattr(request, "session", None)
    if session is not None and session.session_key:
        ctx["session_id"] = session.session_key
    return ctx


def _prefix(ctx, named):
    """`SELECT set_config(...)` for the values present, with its parameters."""
    items = [(k, str(ctx[k])) for k in _NAMES if ctx.get(k)]
    if named:
        sql = ", ".join(
            f"set_config('trailmark.{k}', %(trailmark_{k})s, true)" for k, _ in items
        )
        return f"SELECT {sql}; ", {f"trailmark_{k}": v for k, v in items}
    sql = ", ".join(f"set_config('trailmark.{k}', %s, true)" for k, _ in items)
    return f"SELECT {sql}; ", [v for _, v in items]


def _wrapper(ctx):
    def wrapper(execute, sql, params, many, context):
        if not any(ctx.get(k) for k in _NAMES) or sql.lstrip().upper().startswith(_SKIP):
            return execute(sql, params, many, context)
        if many:
            # executemany cannot carry a prefix: set the context first, in
            # one transaction with the statements.
            prefix, values = _prefix(ctx, False)
            with transaction.atomic(using=context["connection"].alias):
                context["cursor"].cursor.execute(prefix.rstrip("; "), values)
                return execute(sql, params, many, context)
        named = isinstance(params, dict)
        prefix, values = _prefix(ctx, named)
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


class TrailmarkContextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        ctx = context_from_request(request)
        token = current.set(ctx)
        wrappers = [connections[alias].execute_wrapper(_wrapper(ctx)) for alias in connections]
        try:
            for w in wrappers:
                w.__enter__()
            return self.get_response(request)
        finally:
            for w in reversed(wrappers):
                w.__exit__(None, None, None)
            current.reset(token)
