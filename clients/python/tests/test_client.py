"""The client against a real `trailmark serve`: delivery once, outages,
application restarts, bad input, refusals."""

from __future__ import annotations

import socket
import threading
import time
import urllib.request
from datetime import datetime, timezone

import pytest

import trailmark
from conftest import until


def make(server, tmp_path, **kw):
    return trailmark.Client(server.url, server.admin, spool_path=str(tmp_path / "spool.sqlite3"), flush_interval=0.05, **kw)


def test_events_take_the_request_context_and_arrive_once(server, tmp_path):
    client = make(server, tmp_path)
    with trailmark.context(actor_id="42", actor_name="alice", ip="203.0.113.7", request_id="r-1", tenant="acme"):
        first = client.record("invoice.export", resource={"type": "Invoice", "id": "7"})
    client.login_failed("mallory", tenant="acme", context={"ip": "198.51.100.9"})
    assert client.flush()
    [event] = server.events("tenant=acme&actor=42")
    assert event["id"] == first
    assert event["actor"] == {"id": "42", "name": "alice", "type": "user"}
    assert event["context"]["ip"] == "203.0.113.7"
    assert event["context"]["request_id"] == "r-1"
    [failed] = server.events("tenant=acme&outcome=failure")
    assert failed["actor"]["name"] == "mallory" and failed["action"] == "auth.login"
    client.close()


def test_a_server_outage_during_200_requests_fails_and_slows_none_and_loses_none(server, tmp_path):
    client = make(server, tmp_path)
    server.stop()
    slowest = 0.0
    ids = []
    for n in range(200):
        start = time.monotonic()
        ids.append(client.record("page.view", actor={"id": f"u{n % 7}", "type": "user"}, tenant="outage"))
        slowest = max(slowest, time.monotonic() - start)
    assert all(ids) and len(set(ids)) == 200
    # Each record wrote to the local spool only: nothing waited on the
    # server's timeout (10 s).
    assert slowest < 1.0, slowest
    assert client.pending() == 200
    server.start()
    assert client.flush(30)
    stored = server.events("tenant=outage")
    assert sorted(e["id"] for e in stored) == sorted(ids), "every event, once"
    client.close()


def test_events_recorded_before_an_application_restart_mid_outage_arrive_once(server, tmp_path):
    server.stop()
    before = make(server, tmp_path)
    ids = [before.record("order.create", actor={"id": "svc", "type": "service"}, tenant="restart") for _ in range(50)]
    before.close(timeout=0.2)  # the application stops; the server is still down
    after = make(server, tmp_path)
    assert after.pending() == 50
    ids += [after.record("order.create", actor={"id": "svc", "type": "service"}, tenant="restart") for _ in range(50)]
    server.start()
    assert after.flush(30)
    stored = server.events("tenant=restart")
    assert sorted(e["id"] for e in stored) == sorted(ids)
    after.close()


def test_a_retried_event_is_stored_once_and_a_reused_id_is_refused(server, tmp_path):
    client = make(server, tmp_path)
    event_id = trailmark.uuid7()
    when = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
    for _ in range(3):
        client.record("door.open", actor={"id": "u1", "type": "user"}, tenant="once", id=event_id, occurred_at=when)
        assert client.flush()
    assert [e["id"] for e in server.events("tenant=once")] == [event_id]
    # The same id for another event: refused by the server, kept aside.
    client.record("door.close", actor={"id": "u1", "type": "user"}, tenant="once", id=event_id, occurred_at=when)
    assert client.flush()
    [(refused, _, error)] = client.rejected()
    assert refused == event_id and error.startswith("409")
    client.close()


def test_bad_input_is_refused_naming_the_field_and_nothing_is_written(server, tmp_path):
    client = make(server, tmp_path)
    with pytest.raises(ValueError, match="action"):
        client.record("", actor={"id": "u", "type": "user"})
    with pytest.raises(ValueError, match="actor"):
        client.record("x.y")
    with pytest.raises(ValueError, match="white space alone"):
        client.record("x.y", actor={"id": "  ", "type": "user"})
    with pytest.raises(ValueError, match="outcome"):
        client.record("x.y", actor={"id": "u", "type": "user"}, outcome="maybe")
    with pytest.raises(ValueError, match="not JSON"):
        client.record("x.y", actor={"id": "u", "type": "user"}, metadata={"when": object()})
    with pytest.raises(ValueError, match="unknown context key"):
        with trailmark.context(user="u"):
            pass
    assert client.pending() == 0
    client.close()


def test_the_batch_size_is_bounded_by_the_servers_own_bound(server, tmp_path):
    doc = server.get("/openapi.json")
    body = doc["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]
    most = body["schema"]["oneOf"][1]["maxItems"]
    assert trailmark._client.MAX_BATCH_SIZE == most
    make(server, tmp_path, batch_size=most).close()
    with pytest.raises(ValueError, match=f"batch_size: must be 1 to {most}"):
        make(server, tmp_path, batch_size=most + 1)
    with pytest.raises(ValueError, match="batch_size"):
        make(server, tmp_path, batch_size=0)


def test_events_the_server_refuses_are_kept_aside_and_the_rest_delivered(server, tmp_path):
    client = make(server, tmp_path, batch_size=10)
    server.stop()
    good = client.record("a.b", actor={"id": "u", "type": "user"}, tenant="kept")
    bad = client.record("a.b", actor={"id": "u", "type": "user"}, tenant="Not A Tenant!")
    server.start()
    until("the refusal", lambda: client.rejected())
    assert client.flush()
    [(rejected_id, _, error)] = client.rejected()
    assert rejected_id == bad and "tenant" in error
    assert [e["id"] for e in server.events("tenant=kept")] == [good]
    client.close()


def ingest_requests(server) -> int:
    """The server's count of ingest requests since it started (/metrics)."""
    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("trailmark_ingest_requests_total "):
                return int(float(line.split()[1]))
    raise AssertionError("no trailmark_ingest_requests_total in /metrics")


def test_an_event_refused_in_a_batch_never_takes_the_others_with_it(server, tmp_path):
    client = make(server, tmp_path, batch_size=100)
    taken = trailmark.uuid7()
    client.record("door.open", actor={"id": "u", "type": "user"}, tenant="mixed", id=taken)
    assert client.flush()
    server.stop()
    # One batch: nine new events and, among them, the stored id for
    # another event (409, which names no index): the batch is narrowed
    # down to it.
    good = [client.record("a.b", actor={"id": f"u{n}", "type": "user"}, tenant="mixed") for n in range(4)]
    client.record("door.close", actor={"id": "u", "type": "user"}, tenant="mixed", id=taken)
    good += [client.record("a.b", actor={"id": f"u{n}", "type": "user"}, tenant="mixed") for n in range(4, 9)]
    server.start()
    until("the refusal", lambda: client.rejected())
    assert client.flush()
    [(refused, _, error)] = client.rejected()
    assert refused == taken and error.startswith("409")
    stored = sorted(e["id"] for e in server.events("tenant=mixed"))
    assert stored == sorted(good + [taken])

    # The narrowed batch grows back to its size: 300 events go in a few
    # requests, not one or two each.
    server.stop()
    more = [client.record("a.b", actor={"id": f"v{n}", "type": "user"}, tenant="after") for n in range(300)]
    server.start()
    assert client.flush(30)
    assert sorted(e["id"] for e in server.events("tenant=after")) == sorted(more)
    assert ingest_requests(server) <= 12, ingest_requests(server)

    # A 400 whose problems fill more than the 4,000 characters kept of an
    # answer: the problems are read whole, so only the events they name are
    # kept aside (all 100 were, when the cut answer could not be read).
    server.stop()
    ids = []
    for n in range(100):
        tenant = "Not A Tenant!" if n % 2 else "long"
        ids.append(client.record("a.b", actor={"id": f"u{n}", "type": "user"}, tenant=tenant))
    server.start()
    until("the refusals", lambda: len(client.rejected()) > 1)
    assert client.flush()
    assert sorted(e["id"] for e in server.events("tenant=long")) == sorted(ids[0::2])
    assert sorted(r[0] for r in client.rejected() if r[0] != taken) == sorted(ids[1::2])
    client.close()


def test_refused_events_kept_aside_are_bounded_newest_first(server, tmp_path):
    client = make(server, tmp_path, max_rejected_events=3)
    server.stop()
    bad = [client.record("a.b", actor={"id": f"u{n}", "type": "user"}, tenant="Not A Tenant!") for n in range(5)]
    server.start()
    until("the refusals", lambda: client.rejected_count == 5)
    assert [r[0] for r in client.rejected()] == bad[2:]
    assert client.rejected_dropped == 2
    with pytest.raises(ValueError, match="max_rejected_events"):
        make(server, tmp_path, max_rejected_events=0)
    client.close()


def test_a_disabled_client_sends_nothing(server, tmp_path):
    client = make(server, tmp_path, enabled=False)
    assert client.record("a.b", actor={"id": "u", "type": "user"}, tenant="off") is None
    assert client.pending() == 0
    client.close()
    assert server.events("tenant=off") == []


def test_a_full_spool_drops_and_counts_without_raising(server, tmp_path):
    server.stop()
    client = make(server, tmp_path, max_spool_events=5)
    ids = [client.record("a.b", actor={"id": "u", "type": "user"}, tenant="full") for _ in range(8)]
    assert sum(1 for i in ids if i) == 5 and client.dropped == 3
    client.close(timeout=0.1)


class CountingProxy:
    """A TCP relay in front of the server that counts the connections it
    accepts and can cut them all, as a server closing idle connections does."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.accepted = 0
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.port))
            self.accepted += 1
            self.pairs.append((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        CountingProxy._shut(a, b)

    @staticmethod
    def _shut(*sockets: socket.socket) -> None:
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        for client, upstream in self.pairs:
            self._shut(client, upstream)

    def close(self) -> None:
        self.cut()
        self.listener.close()


def test_batches_go_over_one_kept_alive_connection(server, tmp_path):
    proxy = CountingProxy(server.port)
    client = trailmark.Client(
        proxy.url, server.admin, spool_path=str(tmp_path / "spool.sqlite3"), flush_interval=0.05, batch_size=10
    )
    ids = [client.record("page.view", actor={"id": f"u{n}", "type": "user"}, tenant="kept") for n in range(100)]
    assert client.flush()
    assert client.sent == 100
    assert sorted(e["id"] for e in server.events("tenant=kept")) == sorted(ids)
    assert proxy.accepted == 1, "one connection for ten batches or more"
    client.close()
    proxy.close()


def test_a_kept_connection_the_server_closed_is_replaced_at_once(server, tmp_path, caplog):
    proxy = CountingProxy(server.port)
    client = trailmark.Client(
        proxy.url, server.admin, spool_path=str(tmp_path / "spool.sqlite3"), flush_interval=0.05
    )
    first = client.record("page.view", actor={"id": "u1", "type": "user"}, tenant="cut")
    assert client.flush()
    proxy.cut()
    with caplog.at_level("WARNING", logger="trailmark"):
        second = client.record("page.view", actor={"id": "u2", "type": "user"}, tenant="cut")
        assert client.flush()
    assert caplog.records == [], "sent again on a new connection, not after a backoff"
    assert proxy.accepted == 2
    assert sorted(e["id"] for e in server.events("tenant=cut")) == sorted([first, second])
    client.close()
    proxy.close()


def test_through_a_proxy_from_the_environment_each_batch_goes_through_it(server, tmp_path, monkeypatch):
    # The relay forwards to the server, which answers a proxy's
    # absolute-form request as any other.
    proxy = CountingProxy(server.port)
    monkeypatch.setenv("http_proxy", proxy.url)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    client = trailmark.Client(
        server.url, server.admin, spool_path=str(tmp_path / "spool.sqlite3"), flush_interval=0.05, batch_size=10
    )
    ids = [client.record("page.view", actor={"id": f"u{n}", "type": "user"}, tenant="proxied") for n in range(30)]
    assert client.flush()
    assert client.sent == 30
    assert proxy.accepted >= 3, "every batch went through the proxy, on a connection of its own"
    monkeypatch.delenv("http_proxy")
    assert sorted(e["id"] for e in server.events("tenant=proxied")) == sorted(ids)
    client.close()
    proxy.close()
