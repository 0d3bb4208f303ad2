"""The Django middleware against a real PostgreSQL with Trailmark capture."""

import os
import sys
import threading

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), os.path.dirname(os.path.dirname(HERE))]

from pgtest import Database  # noqa: E402


@pytest.fixture(scope="module")
def shop():
    db = Database("tm_django")
    os.environ["SHOP_DB"] = db.name
    p = db.params
    os.environ["PGHOST"], os.environ["PGPORT"], os.environ["PGUSER"] = (
        p.get("host", "127.0.0.1"),
        str(p.get("port", "5432")),
        p.get("user", "postgres"),
    )
    os.environ["DJANGO_SETTINGS_MODULE"] = "shop.settings"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", run_syncdb=True, verbosity=0)
    db.install("--tables", "public.shop_customer", "--exclude", "public.shop_customer.password")
    from django.contrib.auth.models import User

    from shop.models import Customer

    alice = User.objects.create_user("alice", password="x")
    bob = User.objects.create_user("bob", password="x")
    Customer.objects.create(name="Acme", price="19.99")
    Customer.objects.create(name="Globex", price="5.00")
    db.clear_outbox()
    yield db, alice, bob
    from django.db import connections

    connections.close_all()
    db.drop()


def client_for(user):
    from django.test import Client

    c = Client(REMOTE_ADDR="203.0.113.7", HTTP_USER_AGENT="pytest-browser", HTTP_X_REQUEST_ID="r-1")
    if user is not None:
        c.force_login(user)
    return c


def test_autocommit_update_carries_the_signed_in_user(shop):
    db, alice, _ = shop
    db.clear_outbox()
    assert client_for(alice).post("/price/1", {"price": "24.50"}).status_code == 200
    [(op, ctx, old, new)] = db.outbox()
    assert op == "update"
    assert ctx["actor_id"] == str(alice.pk)
    assert ctx["actor_name"] == "alice"
    assert ctx["actor_type"] == "user"
    assert ctx["ip"] == "203.0.113.7"
    assert ctx["user_agent"] == "pytest-browser"
    assert ctx["request_id"] == "r-1"
    assert ctx["session_id"]
    assert "password" not in new


def test_bulk_update_in_atomic_after_a_rolled_back_savepoint_keeps_the_actor(shop):
    db, alice, _ = shop
    db.clear_outbox()
    assert client_for(alice).post("/bulk").status_code == 200
    rows = db.outbox()
    assert [r[0] for r in rows] == ["update", "update"], rows
    assert all(r[1].get("actor_id") == str(alice.pk) for r in rows)
    assert all("rolled back" not in str(r[3]) for r in rows)


def test_raw_sql_with_a_literal_percent_is_captured_and_unchanged(shop):
    db, _, bob = shop
    db.clear_outbox()
    assert client_for(bob).post("/raw").status_code == 200
    [(op, ctx, old, new)] = db.outbox()
    assert new["name"] == old["name"] + "%"
    assert ctx["actor_name"] == "bob"


def test_create_returns_the_new_id_through_the_prefix(shop):
    db, alice, _ = shop
    db.clear_outbox()
    response = client_for(alice).post("/create", {"name": "Initech"})
    [(op, ctx, old, new)] = db.outbox()
    assert op == "insert"
    assert response.content.decode() == str(new["id"])
    assert ctx["actor_id"] == str(alice.pk)


def test_anonymous_requests_and_work_outside_requests_carry_no_actor(shop):
    db, _, _ = shop
    db.clear_outbox()
    client_for(None).post("/price/2", {"price": "6.00"})
    from shop.models import Customer

    Customer.objects.filter(pk=2).update(price="7.00")  # a management command, say
    rows = db.outbox()
    assert len(rows) == 2
    assert "actor_id" not in rows[0][1] and rows[0][1]["ip"] == "203.0.113.7"
    assert rows[1][1] == {}


def test_concurrent_requests_on_pooled_connections_keep_their_own_actors(shop):
    db, alice, bob = shop
    db.clear_outbox()
    errors = []

    def work(user, price):
        try:
            c = client_for(user)
            for _ in range(20):
                assert c.post("/price/1", {"price": price}).status_code == 200
        except Exception as e:  # reported below
            errors.append(e)
        finally:
            from django.db import connection

            connection.close()

    threads = [
        threading.Thread(target=work, args=(alice, "1.11")),
        threading.Thread(target=work, args=(bob, "2.22")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    rows = db.outbox()
    assert len(rows) == 40
    for op, ctx, old, new in rows:
        expected = str(alice.pk) if new["price"] == 1.11 else str(bob.pk)
        assert ctx["actor_id"] == expected
