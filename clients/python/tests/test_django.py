"""`trailmark.django` in a real Django site on a real PostgreSQL with
capture installed, against a real `trailmark serve` that drains it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# Django and psycopg come from scripts/test's integrations virtualenv.
from psycopg.conninfo import conninfo_to_dict  # noqa: E402

from conftest import Server, create_database, drop_database, trailmark_bin, until  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    name, conninfo = create_database("tm_pkg_django")
    params = conninfo_to_dict(conninfo)
    os.environ.update(
        SITE_DB=name,
        PGHOST=params.get("host", "127.0.0.1"),
        PGPORT=str(params.get("port", "5432")),
        PGUSER=params.get("user", "postgres"),
        DJANGO_SETTINGS_MODULE="django_site.settings",
    )
    tmp = tmp_path_factory.mktemp("django")
    server = Server(str(tmp / "data"), extra=["--capture-source", conninfo])
    reader = server.post("/v1/keys", {"name": "my activity", "scopes": "read", "tenant": "site"})
    os.environ.update(
        TRAILMARK_URL=server.url,
        TRAILMARK_KEY=server.admin,
        TRAILMARK_READ_KEY=reader["key"],
        TRAILMARK_SPOOL_PATH=str(tmp / "spool.sqlite3"),
        TRAILMARK_BIN_PATH=trailmark_bin(),
    )
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", run_syncdb=True, verbosity=0)
    out = subprocess.run(
        [trailmark_bin(), "capture", "pg", "install", "--source", conninfo, "--tables", "public.notes_note"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    from django.contrib.auth.models import User

    alice = User.objects.create_superuser("alice", password="pw-alice")
    yield server, alice
    from django.db import connections

    from trailmark.django import conf

    conf.reset()
    connections.close_all()
    server.stop()
    drop_database(name)


def sent():
    """Everything the application did is in the trail: the client's queue
    flushed, and the capture's outbox drained (a row leaves it only once the
    ledger holds it durably; under a stream of changes the drainer waits up
    to 100 ms for more before it reads)."""
    from django.db import connection

    from trailmark.django import conf

    assert conf.client().flush(20)

    def drained():
        with connection.cursor() as cursor:
            cursor.execute("SELECT NOT EXISTS (SELECT 1 FROM trailmark.outbox)")
            return cursor.fetchone()[0]

    until("the capture's outbox drained", drained)


def browser(remote, forwarded=None):
    from django.test import Client

    extra = {"REMOTE_ADDR": remote, "HTTP_USER_AGENT": "pytest"}
    if forwarded:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return Client(raise_request_exception=False, **extra)


def test_logins_logouts_and_failed_logins_are_events_with_the_ip_from_a_trusted_proxy_only(site):
    server, alice = site
    via_proxy = browser("10.0.0.5", "198.51.100.23, 203.0.113.9")
    assert via_proxy.post("/sign-in", {"username": "alice", "password": "wrong"}).status_code == 401
    assert via_proxy.post("/sign-in", {"username": "alice", "password": "pw-alice"}).status_code == 200
    assert via_proxy.post("/sign-out").status_code == 200
    # Not a trusted proxy: its X-Forwarded-For is not believed.
    direct = browser("198.51.100.1", "203.0.113.9")
    assert direct.post("/sign-in", {"username": "alice", "password": "nope"}).status_code == 401
    sent()
    failed = server.events("tenant=site&action=auth.login&outcome=failure")
    assert sorted(e["context"]["ip"] for e in failed) == ["198.51.100.1", "203.0.113.9"]
    assert all(e["actor"]["name"] == "alice" for e in failed)
    [login] = server.events("tenant=site&action=auth.login&outcome=success")
    assert login["actor"]["id"] == str(alice.pk) and login["context"]["ip"] == "203.0.113.9"
    [logout] = server.events("tenant=site&action=auth.logout")
    assert logout["actor"]["name"] == "alice"


def test_a_captured_update_and_an_admin_edit_carry_the_signed_in_user(site):
    server, alice = site
    from django_site.notes.models import Note

    note = Note.objects.create(title="plan")
    c = browser("10.0.0.5", "203.0.113.77")
    c.force_login(alice)
    assert c.post("/rename", {"title": "plan", "body": "v2"}).status_code == 200
    answer = c.post(f"/admin/notes/note/{note.pk}/change/", {"title": "plan", "body": "v3"})
    assert answer.status_code == 302, answer.content[:500]
    sent()
    updates = until(
        "the captured updates",
        lambda: (lambda found: found if len(found) >= 2 else None)(
            server.events(f"tenant=site&resource_type=public.notes_note&resource_id={note.pk}&action=update")
        ),
    )
    assert all(e["actor"]["id"] == str(alice.pk) for e in updates), updates
    assert all(e["context"]["ip"] == "203.0.113.77" for e in updates)
    [admin] = server.events("tenant=site&action=admin.update")
    assert admin["resource"] == {"id": str(note.pk), "name": "plan", "type": "notes.Note"}
    assert admin["actor"]["id"] == str(alice.pk)


def test_a_write_that_fails_is_a_failure_event_with_the_actor_and_the_error(site):
    server, alice = site
    c = browser("198.51.100.4")
    c.force_login(alice)
    assert c.post("/notes", {"title": "dup"}).status_code == 200
    assert c.post("/notes", {"title": "dup"}).status_code == 500
    sent()
    [failed] = server.events("tenant=site&action=add_note.failed")
    assert failed["outcome"] == "failure"
    assert failed["actor"]["id"] == str(alice.pk)
    assert failed["metadata"]["error"] == "IntegrityError"
    assert failed["context"]["ip"] == "198.51.100.4"


def test_my_activity_is_exactly_the_signed_in_users_events(site):
    server, alice = site
    from django.contrib.auth.models import AnonymousUser, User
    from django.core.exceptions import PermissionDenied
    from django.test import RequestFactory

    from trailmark.django.activity import my_activity

    bob = User.objects.create_user("bob", password="pw-bob")
    for who, pw in (("bob", "pw-bob"), ("alice", "pw-alice")):
        assert browser("198.51.100.8").post("/sign-in", {"username": who, "password": pw}).status_code == 200
    sent()
    request = RequestFactory().get("/me")
    request.user = alice
    page = my_activity(request, limit=1000)
    mine = server.events(f"tenant=site&actor={alice.pk}")
    assert page["events"] and sorted(e["id"] for e in page["events"]) == sorted(e["id"] for e in mine)
    request.user = bob
    assert {e["actor"]["id"] for e in my_activity(request)["events"]} == {str(bob.pk)}
    request.user = AnonymousUser()
    with pytest.raises(PermissionDenied):
        my_activity(request)
    # Without the application's tenant an actor id is ambiguous: refused,
    # never read across every tenant the key sees.
    from django.core.exceptions import ImproperlyConfigured
    from django.test import override_settings

    request.user = alice
    with override_settings(TRAILMARK_TENANT=None), pytest.raises(ImproperlyConfigured, match="TRAILMARK_TENANT"):
        my_activity(request)
    # An empty or non-string tenant is an error naming the setting, never
    # taken as no tenant.
    for bad in ("", "  ", 5):
        with override_settings(TRAILMARK_TENANT=bad), pytest.raises(ImproperlyConfigured, match="non-empty string"):
            my_activity(request)


def test_trailmark_check_tells_what_is_captured_and_whether_the_key_is_taken(site):
    import io

    from django.core.management import CommandError, call_command
    from django.test import override_settings

    from trailmark.django import conf

    out = io.StringIO()
    call_command("trailmark_check", stdout=out)
    text = out.getvalue()
    assert "captures public.notes_note" in text and "key: accepted for ingest" in text, text
    with override_settings(TRAILMARK_KEY="tm_not_a_key"):
        with pytest.raises(CommandError, match="TRAILMARK_KEY"):
            call_command("trailmark_check", stdout=io.StringIO())
    assert conf.get().key != "tm_not_a_key"


def test_capture_paused_from_manage_py_captures_nothing_until_resumed_and_the_switch_is_in_the_trail(site):
    import io

    from django.core.management import CommandError, call_command

    from django_site.notes.models import Note

    out = io.StringIO()
    call_command("trailmark_capture", "pause", "--actor", "ops-7", "--reason", "feature flag off", stdout=out)
    assert "paused capture of public.notes_note" in out.getvalue()
    quiet = Note.objects.create(title="while paused")
    call_command("trailmark_capture", "resume", "--actor", "ops-7", stdout=io.StringIO())
    loud = Note.objects.create(title="after")
    switches = until(
        "the switches in the trail",
        lambda: (lambda f: f if len(f) == 2 else None)(
            server_events(site, "resource_type=public.notes_note&action=capture.paused")
            + server_events(site, "resource_type=public.notes_note&action=capture.resumed")
        ),
    )
    assert [e["actor"]["id"] for e in switches] == ["ops-7", "ops-7"]
    assert switches[0]["reason"] == "feature flag off"
    created = until(
        "the capture after resuming",
        lambda: server_events(site, f"resource_type=public.notes_note&resource_id={loud.pk}"),
    )
    assert created[0]["action"] == "create"
    assert server_events(site, f"resource_type=public.notes_note&resource_id={quiet.pk}") == []
    with pytest.raises(CommandError, match="--actor|actor"):
        call_command("trailmark_capture", "pause", stdout=io.StringIO())


def server_events(site, query):
    server, _ = site
    return server.events(query)


def test_the_server_down_during_200_requests_fails_and_slows_none_and_an_app_restart_loses_none(site):
    """200 requests while `trailmark serve` is stopped, half of them failed
    logins (events through the package's spool) and half note creations
    (rows the capture keeps in the outbox); the application restarts after
    100 (its client closes with the server still down, a new one opens the
    same spool). No request fails or waits on the server, and after it
    comes back every event is there once."""
    import time

    from trailmark.django import conf

    server, alice = site
    sent()
    c = browser("198.51.100.77")
    c.force_login(alice)
    server.stop()
    slowest = 0.0
    try:
        for n in range(100):
            if n == 50:
                conf.reset()  # the application restarts mid-outage
            start = time.monotonic()
            assert c.post("/sign-in", {"username": "ghost", "password": "x"}).status_code == 401
            assert c.post("/notes", {"title": f"outage-{n}"}).status_code == 200
            slowest = max(slowest, time.monotonic() - start)
    finally:
        server.start()
    # Each pair wrote to PostgreSQL and to the local spool only: nothing
    # waited on the client's 10 s timeout.
    assert slowest < 2.0, slowest
    sent()
    failed = until(
        "the 100 failed logins",
        lambda: (lambda found: found if len(found) >= 100 else None)(
            server.events("tenant=site&action=auth.login&outcome=failure&ip=198.51.100.77")
        ),
    )
    assert len(failed) == 100 and len({e["id"] for e in failed}) == 100
    created = until(
        "the 100 captured creations",
        lambda: (lambda found: found if len(found) >= 100 else None)(
            server.events("tenant=site&resource_type=public.notes_note&action=create&ip=198.51.100.77")
        ),
    )
    # Once each: 100 distinct rows, no event twice.
    assert len({e["resource"]["id"] for e in created}) == 100
    assert len({e["id"] for e in created}) == 100
    assert all(e["actor"]["id"] == str(alice.pk) for e in created)
