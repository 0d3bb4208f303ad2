"""How the integrations hand the request context to Trailmark capture in
PostgreSQL. ``trailmark.set_context(jsonb)`` (capture version 4 and later)
works in both capture modes: it sets the transaction's settings the triggers
read and, in WAL mode, writes the logical message the WAL decoder reads. A
database whose capture predates it (or has none) gets the settings alone, so
an application never fails a statement for want of the function. Whether a
connection's database has it is asked once per connection (install capture
before the application connects, or restart it after installing)."""

from __future__ import annotations

import json

#: Answers true where ``trailmark.set_context(jsonb)`` exists.
CHECK = "SELECT to_regprocedure('trailmark.set_context(jsonb)') IS NOT NULL"

#: Where a connection's answer is kept.
INFO_KEY = "trailmark_set_context"


def as_json(items) -> str:
    """The context as the JSON object ``set_context`` takes."""
    return json.dumps(dict(items), separators=(",", ":"))
