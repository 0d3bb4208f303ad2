"""How the integrations hand the request context to Trailmark capture in
PostgreSQL. ``trailmark.set_context(jsonb)`` (capture version 4 and later)
works in both capture modes: it sets the transaction's settings the triggers
read and, in WAL mode, writes the logical message the WAL decoder reads. A
database whose capture predates it (or has none) gets the settings alone, so
an application never fails a statement for want of the function. Whether a
connection's database has it is asked once per connection while it does, and
again every `RECHECK_SECONDS` while it does not: capture installed while the
application runs reaches its connections that far behind (in WAL mode,
settings alone do not reach the drainer: the changes in between are captured
without their context). `capture pg uninstall` leaves the function, a no-op,
so a connection that found it keeps finding it."""

from __future__ import annotations

import json
import time

#: Answers true where ``trailmark.set_context(jsonb)`` exists.
CHECK = "SELECT to_regprocedure('trailmark.set_context(jsonb)') IS NOT NULL"

#: Where a connection's answer is kept: True, or when to ask again.
INFO_KEY = "trailmark_set_context"

#: How long a connection believes its database has no ``set_context``.
RECHECK_SECONDS = 10.0


def has_set_context(store, ask) -> bool:
    """Whether the connection whose answers `store` (a dict) keeps has
    ``trailmark.set_context``; `ask()` runs `CHECK` on it and answers the
    result, when the kept answer does not hold."""
    known = store.get(INFO_KEY)
    if known is True:
        return True
    if known is not None and time.monotonic() < known:
        return False
    found = bool(ask())
    store[INFO_KEY] = True if found else time.monotonic() + RECHECK_SECONDS
    return found


def as_json(items) -> str:
    """The context as the JSON object ``set_context`` takes."""
    return json.dumps(dict(items), separators=(",", ":"))
