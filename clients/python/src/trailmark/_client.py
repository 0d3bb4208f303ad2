"""The client: `record` writes an event to the disk spool and returns; a
background thread sends the spool to the server in batches, retrying with
backoff, and deletes what the server stored. Ids are made at the source, so
an event sent twice (a retry after a lost answer, two processes sharing a
spool) is stored once."""

from __future__ import annotations

import http.client
import json
import logging
import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from typing import Any, Mapping

from ._context import current
from ._ids import uuid7
from ._spool import Spool, SpoolFull

log = logging.getLogger("trailmark")

_OUTCOMES = ("success", "failure")
# The most events the server takes in one request: the `maxItems` its
# OpenAPI document states (a test holds the two together).
MAX_BATCH_SIZE = 5000
_CONTEXT_FIELDS = ("ip", "user_agent", "request_id", "session_id")
# A kept-alive connection idle longer than this is closed rather than used
# again: the server closes one idle for its --header-timeout (10 s by
# default), and a request sent as it does so fails.
_IDLE_REUSE = 5.0


class Client:
    """Records audit events for a Trailmark server.

    `record` never waits for the server and never raises because of it: an
    outage, a slow answer or a refused key only delay delivery (the events
    wait in the spool, on disk). It raises `ValueError` for an event that
    can never be stored (naming the field), before anything is written.
    """

    def __init__(
        self,
        url: str,
        key: str,
        *,
        spool_path: str = "trailmark-spool.sqlite3",
        batch_size: int = 500,
        batch_bytes: int = 4 * 1024 * 1024,
        flush_interval: float = 1.0,
        timeout: float = 10.0,
        max_spool_events: int = 1_000_000,
        max_spool_bytes: int = 512 * 1024 * 1024,
        max_backoff: float = 30.0,
        max_rejected_events: int = 10_000,
        enabled: bool = True,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"url: {url!r} must start with http:// or https://")
        if not key:
            raise ValueError("key: give a key with the ingest scope")
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise ValueError(
                f"batch_size: must be 1 to {MAX_BATCH_SIZE} (the server's most events a request)"
            )
        self.url = url.rstrip("/")
        parts = urllib.parse.urlsplit(self.url)
        if not parts.hostname:
            raise ValueError(f"url: {url!r} names no host")
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname, parts.port
        self._path = parts.path + "/v1/events"
        # Through a proxy (http_proxy, https_proxy, no_proxy, as urllib reads
        # them when the client is made) each batch goes through urllib, on a
        # connection of its own; otherwise on one connection kept alive
        # between batches.
        proxy = urllib.request.getproxies().get(parts.scheme)
        self._proxied = None
        if proxy and not urllib.request.proxy_bypass(self._host):
            self._proxied = urllib.request.build_opener(urllib.request.ProxyHandler({parts.scheme: proxy}))
        self._conn: http.client.HTTPConnection | None = None
        self._conn_used = 0.0
        self.enabled = enabled
        self._key = key
        self._batch_size = batch_size
        # The batch size asked for; a refusal narrowed down to its event (a
        # 409, a 400 naming none, a 413) halves the batch, and each batch
        # sent doubles it again up to this.
        self._most = batch_size
        self._batch_bytes = batch_bytes
        self._flush_interval = flush_interval
        self._timeout = timeout
        self._max_backoff = max_backoff
        self._spool = Spool(spool_path, max_spool_events, max_spool_bytes, max_rejected_events)
        self._wake = threading.Condition()
        self._stopping = False
        self._idle = threading.Event()
        #: Events the spool could not take (full), the server refused, and sent.
        self.dropped = 0
        self.rejected_count = 0
        #: Refused events dropped from the spool past `max_rejected_events`.
        self.rejected_dropped = 0
        self.sent = 0
        self._thread = threading.Thread(target=self._run, name="trailmark-sender", daemon=True)
        if enabled:
            self._thread.start()

    # -- recording ---------------------------------------------------------

    def record(
        self,
        action: str,
        *,
        actor: Mapping[str, Any] | None = None,
        resource: Mapping[str, Any] | None = None,
        outcome: str = "success",
        changes: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        tenant: str | None = None,
        reason: str | None = None,
        occurred_at: datetime | None = None,
        id: str | None = None,
    ) -> str | None:
        """Records one event; answers its id (None when disabled, or when
        the spool is full: then the event is dropped, counted in `dropped`
        and logged, and the request goes on)."""
        if not self.enabled:
            return None
        event = self.event(
            action,
            actor=actor,
            resource=resource,
            outcome=outcome,
            changes=changes,
            context=context,
            metadata=metadata,
            tenant=tenant,
            reason=reason,
            occurred_at=occurred_at,
            id=id,
        )
        try:
            body = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
        except (TypeError, ValueError) as e:
            raise ValueError(f"the event is not JSON: {e}") from None
        try:
            self._spool.add(event["id"], body)
        except SpoolFull as e:
            self.dropped += 1
            log.error("trailmark: event %s dropped: %s", event["id"], e)
            return None
        if self._spool.pending() >= self._batch_size:
            with self._wake:
                self._wake.notify()
        return event["id"]

    def event(self, action: str, **fields: Any) -> dict[str, Any]:
        """The event `record` would send, with the request context applied."""
        if not isinstance(action, str) or not action.strip():
            raise ValueError("action: give a non-empty action name")
        outcome = fields.get("outcome") or "success"
        if outcome not in _OUTCOMES:
            raise ValueError(f"outcome: {outcome!r}: give success or failure")
        ctx = current()
        actor = fields.get("actor")
        if actor is None:
            if not ctx.get("actor_id", "").strip():
                raise ValueError(
                    "actor: give actor={'id': ..., 'type': ...} or set the request context (actor_id)"
                )
            actor = {"id": ctx["actor_id"], "type": ctx.get("actor_type") or "user"}
            if ctx.get("actor_name"):
                actor["name"] = ctx["actor_name"]
        elif not str(actor.get("id") or "").strip() or not actor.get("type"):
            raise ValueError("actor: give both id and type (an id of white space alone names nobody)")
        event: dict[str, Any] = {
            "id": fields.get("id") or uuid7(),
            "occurred_at": (fields.get("occurred_at") or datetime.now(timezone.utc))
            .astimezone(timezone.utc)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "actor": dict(actor),
            "action": action,
            "outcome": outcome,
        }
        context = {k: ctx[k] for k in _CONTEXT_FIELDS if ctx.get(k)}
        context.update(fields.get("context") or {})
        if context:
            event["context"] = context
        tenant = fields.get("tenant") or ctx.get("tenant")
        if tenant:
            event["tenant"] = tenant
        reason = fields.get("reason") or ctx.get("reason")
        if reason:
            event["reason"] = reason
        for name in ("resource", "changes", "metadata"):
            if fields.get(name) is not None:
                event[name] = fields[name]
        return event

    # -- the common application events -------------------------------------

    def login(self, user_id: Any, name: str | None = None, **fields: Any) -> str | None:
        actor = {"id": str(user_id), "type": "user", **({"name": name} if name else {})}
        return self.record("auth.login", actor=actor, **fields)

    def logout(self, user_id: Any, name: str | None = None, **fields: Any) -> str | None:
        actor = {"id": str(user_id), "type": "user", **({"name": name} if name else {})}
        return self.record("auth.logout", actor=actor, **fields)

    def login_failed(self, username: str | None, **fields: Any) -> str | None:
        """A failed login: the claimed username is the actor's name (what
        the failed-logins alert counts per username)."""
        actor = {"id": "anonymous", "type": "anonymous", **({"name": username} if username else {})}
        return self.record("auth.login", actor=actor, outcome="failure", **fields)

    # -- delivery ----------------------------------------------------------

    def pending(self) -> int:
        """Events waiting in the spool."""
        return self._spool.pending()

    def rejected(self) -> list[tuple[str, str, str]]:
        """Events the server refused: (id, event JSON, the server's answer)."""
        return self._spool.rejected()

    def flush(self, timeout: float = 10.0) -> bool:
        """Waits until the spool is empty; False when `timeout` passed first."""
        deadline = time.monotonic() + timeout
        while self._spool.pending():
            with self._wake:
                self._wake.notify()
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Sends what it can within `timeout`, then stops; what is left
        stays in the spool for the next start."""
        if self.enabled:
            self.flush(timeout)
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if not self._thread.is_alive():
            self._disconnect()
        self._spool.close()

    def _run(self) -> None:
        backoff = 0.0
        while True:
            with self._wake:
                if self._stopping:
                    return
                if backoff or not self._spool.pending():
                    self._wake.wait(backoff or self._flush_interval)
                if self._stopping:
                    return
            try:
                backoff = self._send_some(backoff)
            except Exception:  # noqa: BLE001 - the sender must never die
                log.exception("trailmark: sending failed; retrying")
                backoff = self._next(backoff)

    def _next(self, backoff: float, floor: float = 0.0) -> float:
        wait = min(self._max_backoff, max(floor, backoff * 2 or 0.5))
        return wait * random.uniform(0.8, 1.2)

    def _send_some(self, backoff: float) -> float:
        """Sends one batch; answers the wait before the next (0: at once)."""
        rows = self._spool.oldest(self._batch_size, self._batch_bytes)
        if not rows:
            return 0.0
        body = ("[" + ",".join(b for _, _, b in rows) + "]").encode()
        try:
            status, headers, text = self._post(body)
        except (urllib.error.URLError, http.client.HTTPException, OSError, TimeoutError) as e:
            log.warning("trailmark: the server is unreachable (%s); events wait in the spool", e)
            return self._next(backoff)
        if 200 <= status < 300:
            self._spool.remove(seq for seq, _, _ in rows)
            self.sent += len(rows)
            self._batch_size = min(self._most, self._batch_size * 2)
            return 0.0
        # 400: events that can never be stored, by index; 409: an id already
        # stored for another event; 413: too large. Sending them again
        # cannot help; the batch's other events are never refused with them.
        bad = self._named(rows, text) if status == 400 else None
        if len(rows) > 1 and status in (400, 409, 413) and not bad:
            self._batch_size = max(1, len(rows) // 2)
            return 0.0
        if status in (400, 409, 413):
            bad = bad or rows
            dropped = self._spool.reject(bad, f"{status} {text[:4000]}")
            self.rejected_count += len(bad)
            log.error("trailmark: the server refused %d event(s): %s %s", len(bad), status, text[:500])
            if dropped:
                self.rejected_dropped += dropped
                log.warning("trailmark: %d older refused event(s) dropped from the spool (it keeps %d)", dropped, self._spool.max_rejected)
            return 0.0
        text = text[:4000]
        retry_after = headers.get("retry-after") if headers else None
        floor = float(retry_after) if retry_after and retry_after.isdigit() else 0.0
        if status in (401, 403):
            log.error("trailmark: the server refused the key (%s): %s", status, text)
            floor = max(floor, self._max_backoff)
        else:
            log.warning("trailmark: the server answered %s; retrying", status)
        return self._next(backoff, floor)

    def _headers(self) -> dict[str, str]:
        return {
            "authorization": f"Bearer {self._key}",
            "content-type": "application/json",
            "user-agent": "trailmark-python/0.1",
        }

    def _post(self, body: bytes) -> tuple[int, Any, str]:
        """POSTs a batch: its answer's status, headers and text. Raises
        OSError (or http.client.HTTPException) when no answer came."""
        if self._proxied is not None:
            request = urllib.request.Request(
                self.url + "/v1/events", data=body, method="POST", headers=self._headers()
            )
            try:
                with self._proxied.open(request, timeout=self._timeout) as answer:
                    return answer.status, answer.headers, answer.read().decode("utf-8", "replace")
            except urllib.error.HTTPError as e:
                return e.code, e.headers, e.read().decode("utf-8", "replace")
        if self._conn is not None and time.monotonic() - self._conn_used > _IDLE_REUSE:
            self._disconnect()
        # A kept connection the server closed meanwhile fails at once: the
        # batch goes again on a new one (its ids make a repeat harmless).
        # A timeout is not retried at once: the server may still be at work.
        reused = self._conn is not None
        while True:
            if self._conn is None:
                cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
                self._conn = cls(self._host, self._port, timeout=self._timeout)
            try:
                self._conn.request("POST", self._path, body=body, headers=self._headers())
                answer = self._conn.getresponse()
                text = answer.read().decode("utf-8", "replace")
            except ConnectionError:
                self._disconnect()
                if reused:
                    reused = False
                    continue
                raise
            except (http.client.HTTPException, OSError):
                self._disconnect()
                raise
            self._conn_used = time.monotonic()
            return answer.status, answer.headers, text

    def _disconnect(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @staticmethod
    def _named(rows: list[tuple[int, str, str]], text: str) -> list[tuple[int, str, str]]:
        """The events of a batch a 400's problems name by index (the whole
        answer read: a long list of problems is never cut short here)."""
        try:
            problems = json.loads(text).get("errors", [])
        except (ValueError, AttributeError):
            problems = []
        named = {p.get("index") for p in problems if isinstance(p, dict) and isinstance(p.get("index"), int)}
        return [r for i, r in enumerate(rows) if i in named]
