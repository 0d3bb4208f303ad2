"""Trailmark's Python client: record audit events that survive an outage
of the audit service and are delivered once (docs/integrations.md).

    client = trailmark.Client("http://127.0.0.1:7878", key)
    with trailmark.context(actor_id="42", ip="203.0.113.7"):
        client.record("invoice.export", resource={"type": "Invoice", "id": "7"})
"""

from contextlib import contextmanager
from typing import Any, Iterator

from ._client import Client
from ._context import CONTEXT_KEYS, current, reset_context, set_context
from ._ids import uuid7
from ._spool import SpoolFull


@contextmanager
def context(**values: Any) -> Iterator[dict]:
    """Sets the request context for the block (see `set_context`)."""
    token = set_context(**values)
    try:
        yield current()
    finally:
        reset_context(token)


__all__ = [
    "CONTEXT_KEYS",
    "Client",
    "SpoolFull",
    "context",
    "current",
    "reset_context",
    "set_context",
    "uuid7",
]
