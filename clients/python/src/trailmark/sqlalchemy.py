"""The capture context for SQLAlchemy: whenever a session starts a
transaction on a connection (a pooled one included), one
``SELECT trailmark.set_context(...)`` runs first in that same transaction
(``set_config('trailmark.*', ..., true)`` where capture is older than the
function: see `_pgcontext`), from the request context (`trailmark.context`,
a ContextVar:
it follows the request into async code and into the threadpool FastAPI runs
sync endpoints in). ``true`` makes the values end with the transaction, so a
pooled connection carries nothing into the next request. Code writing
through ``engine.begin()`` instead of a Session calls ``apply(connection)``
once inside its transaction."""

from __future__ import annotations

from typing import Mapping

from sqlalchemy import event, text
from sqlalchemy.orm import Session

from . import _pgcontext
from ._context import CONTEXT_KEYS, current


def apply(connection, ctx: Mapping[str, str] | None = None) -> None:
    """Sets the context in the connection's current transaction."""
    ctx = current() if ctx is None else ctx
    items = [(k, str(ctx[k])) for k in CONTEXT_KEYS if ctx.get(k)]
    if not items:
        return
    # connection.info is kept with the pooled DBAPI connection.
    if _pgcontext.has_set_context(connection.info, lambda: connection.execute(text(_pgcontext.CHECK)).scalar()):
        connection.execute(text("SELECT trailmark.set_context(CAST(:context AS jsonb))"), {"context": _pgcontext.as_json(items)})
        return
    sql = ", ".join(f"set_config('trailmark.{k}', :{k}, true)" for k, _ in items)
    connection.execute(text(f"SELECT {sql}"), dict(items))


def install(session_class=Session):
    """Sets the context at the start of every transaction of sessions of
    `session_class` (``Session``: every session)."""

    def after_begin(session, transaction, connection):
        apply(connection)

    event.listen(session_class, "after_begin", after_begin)
    return after_begin
