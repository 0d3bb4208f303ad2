"""The request context events take their who and where from, kept in
`contextvars`: it follows a request through `await` and into tasks it
starts, and never leaks into another request's thread."""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import Any, Mapping

#: The context keys of DESIGN.md's capture settings, in their order.
CONTEXT_KEYS = (
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

_current: ContextVar[Mapping[str, str] | None] = ContextVar("trailmark_context", default=None)


def current() -> dict[str, str]:
    """The context of the running request (empty outside one)."""
    return dict(_current.get() or {})


def set_context(**values: Any) -> Token:
    """Sets the context (unknown keys are refused, naming them); answers a
    token for `reset_context`."""
    unknown = sorted(set(values) - set(CONTEXT_KEYS))
    if unknown:
        raise ValueError(f"unknown context key(s) {', '.join(unknown)}: the keys are {', '.join(CONTEXT_KEYS)}")
    clean = {k: str(v) for k, v in values.items() if v is not None and str(v) != ""}
    return _current.set(clean)


def reset_context(token: Token) -> None:
    _current.reset(token)
