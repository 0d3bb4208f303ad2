""""My activity": the signed-in user's own events, read through a read key
the application holds (``TRAILMARK_READ_KEY``, best bound to the
application's tenant), filtered by the user's actor id on the server, in the
application's tenant (``TRAILMARK_TENANT``, required: an actor id is one
tenant's, and a read key that sees every tenant would answer other tenants'
users of the same id too)."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, PermissionDenied

from . import conf


def my_activity(request, limit: int = 50, cursor: str | None = None, timeout: float = 5.0) -> dict[str, Any]:
    """The page ``{"events": [...], "next_cursor": ...}`` of the signed-in
    user's events, newest first. Raises ``PermissionDenied`` for an
    anonymous request (never everyone's events)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        raise PermissionDenied("sign in to see your activity")
    c = conf.get()
    key = getattr(settings, "TRAILMARK_READ_KEY", None)
    if not c.url or not key:
        raise ImproperlyConfigured("TRAILMARK_URL and TRAILMARK_READ_KEY: give the server and a key with the read scope")
    if not c.tenant:
        raise ImproperlyConfigured(
            "TRAILMARK_TENANT: name the tenant this application's events are in: an actor id is one "
            "tenant's, and without it a read key that sees every tenant answers other tenants' users "
            "of the same id"
        )
    if not 1 <= limit <= 1000:
        raise ValueError("limit: must be 1 to 1000")
    query = {"actor": str(user.pk), "limit": str(limit), "tenant": c.tenant}
    if cursor:
        query["cursor"] = cursor
    req = urllib.request.Request(
        f"{c.url.rstrip('/')}/v1/events?{urllib.parse.urlencode(query)}",
        headers={"authorization": f"Bearer {key}"},
    )
    with urllib.request.urlopen(req, timeout=timeout) as answer:
        page = json.loads(answer.read())
    # The server filtered by actor and tenant; a page naming anyone else, or
    # another tenant, is refused.
    if any(
        e.get("actor", {}).get("id") != str(user.pk) or e.get("tenant") != c.tenant for e in page.get("events", [])
    ):
        raise PermissionDenied("the server answered events of another actor or tenant")
    return page
