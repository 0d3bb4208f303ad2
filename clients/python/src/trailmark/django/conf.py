"""The package's settings, read once, checked (a bad value is an error
naming the setting), and the one client of the process."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from .. import Client
from .._ip import Network, networks

_lock = threading.Lock()
_client: Client | None = None


@dataclass(frozen=True)
class Settings:
    enabled: bool
    url: str | None
    key: str | None
    trusted: tuple[Network, ...]
    spool_path: str
    tenant: str | None


def get() -> Settings:
    enabled = getattr(settings, "TRAILMARK_ENABLED", True)
    if not isinstance(enabled, bool):
        raise ImproperlyConfigured("TRAILMARK_ENABLED: give True or False")
    try:
        trusted = tuple(networks(getattr(settings, "TRAILMARK_TRUSTED_PROXIES", [])))
    except ValueError as e:
        raise ImproperlyConfigured(f"TRAILMARK_TRUSTED_PROXIES: {e}") from None
    tenant = getattr(settings, "TRAILMARK_TENANT", None)
    if tenant is not None and (not isinstance(tenant, str) or not tenant.strip()):
        raise ImproperlyConfigured(
            "TRAILMARK_TENANT: give the name of the tenant this application's events are in "
            "(a non-empty string), or leave it unset"
        )
    return Settings(
        enabled=enabled,
        url=getattr(settings, "TRAILMARK_URL", None),
        key=getattr(settings, "TRAILMARK_KEY", None),
        trusted=trusted,
        spool_path=getattr(settings, "TRAILMARK_SPOOL_PATH", "trailmark-spool.sqlite3"),
        tenant=tenant,
    )


def client() -> Client | None:
    """The process's client (None when disabled or no server is set)."""
    global _client
    conf = get()
    if not conf.enabled or not conf.url:
        return None
    with _lock:
        if _client is None:
            if not conf.key:
                raise ImproperlyConfigured("TRAILMARK_KEY: give a key with the ingest scope")
            _client = Client(conf.url, conf.key, spool_path=conf.spool_path)
        return _client


def reset() -> None:
    """Closes the client (tests, and settings changes)."""
    global _client
    with _lock:
        if _client is not None:
            _client.close(timeout=1)
        _client = None
