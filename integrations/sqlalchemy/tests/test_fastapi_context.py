"""The package's SQLAlchemy session hook and ASGI middleware
(`trailmark.sqlalchemy`, `trailmark.asgi`) against a real PostgreSQL with
Trailmark capture."""

import asyncio
import os
import subprocess
import sys

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Integer, Numeric, String, create_engine, text, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), os.path.dirname(os.path.dirname(HERE))]

import trailmark.sqlalchemy  # noqa: E402
from pgtest import Database, trailmark_bin  # noqa: E402
from psycopg.conninfo import make_conninfo  # noqa: E402
from trailmark.asgi import TrailmarkMiddleware  # noqa: E402


def user_from_header(scope):
    """Stands in for the application's authentication."""
    for k, v in scope["headers"]:
        if k == b"x-user":
            return {"actor_id": v.decode()}
    return None


class Base(DeclarativeBase):
    pass


class Invoice(Base):
    __tablename__ = "invoice"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer: Mapped[str] = mapped_column(String)
    total: Mapped[float] = mapped_column(Numeric(10, 2))


@pytest.fixture(scope="module")
def setup():
    db = Database("tm_sqla")
    # A small pool: requests reuse each other's connections.
    engine = create_engine(db.url().replace("postgresql://", "postgresql+psycopg://"), pool_size=2, max_overflow=0)
    Base.metadata.create_all(engine)
    db.install("--tables", "public.invoice")
    Sessions = sessionmaker(engine)
    trailmark.sqlalchemy.install(Sessions.class_)
    with Sessions.begin() as s:
        s.add_all([Invoice(id=i, customer=f"c{i}", total=10) for i in range(1, 11)])
    app = FastAPI()
    app.add_middleware(TrailmarkMiddleware, get_user=user_from_header)

    @app.put("/invoices/{invoice_id}")
    def set_total(invoice_id: int, total: str):  # sync: runs in the threadpool
        with Sessions.begin() as s:
            s.get(Invoice, invoice_id).total = total
        return {"ok": True}

    @app.post("/invoices/bulk")
    async def bulk(amount: int):  # async, writing through the threadpool
        def write():
            with Sessions.begin() as s:
                s.execute(update(Invoice).values(total=Invoice.total + amount))
                s.execute(text("UPDATE invoice SET customer = customer || '*' WHERE id <= 2"))

        await run_in_threadpool(write)
        return {"ok": True}

    yield db, app, engine
    engine.dispose()
    db.drop()


async def call(app, method, path, user=None, **params):
    headers = {"user-agent": "pytest", "x-request-id": "req-9"}
    if user:
        headers["x-user"] = user
    transport = httpx.ASGITransport(app=app, client=("198.51.100.4", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        r = await client.request(method, path, headers=headers, params=params)
        assert r.status_code == 200, r.text


def test_a_sync_endpoint_write_carries_the_request_context(setup):
    db, app, _ = setup
    db.clear_outbox()
    asyncio.run(call(app, "PUT", "/invoices/3", user="alice", total="99.50"))
    [(op, ctx, old, new)] = db.outbox()
    assert op == "update" and new["total"] == 99.5
    assert ctx == {
        "actor_id": "alice",
        "actor_type": "user",
        "ip": "198.51.100.4",
        "user_agent": "pytest",
        "request_id": "req-9",
    }


def test_bulk_orm_update_and_raw_sql_in_an_async_endpoint_are_attributed(setup):
    db, app, _ = setup
    db.clear_outbox()
    asyncio.run(call(app, "POST", "/invoices/bulk", user="bob", amount="1"))
    rows = db.outbox()
    assert len(rows) == 12  # 10 by the ORM bulk update, 2 by raw SQL
    assert {r[1]["actor_id"] for r in rows} == {"bob"}


def test_concurrent_requests_on_a_shared_pool_never_borrow_an_actor(setup):
    db, app, _ = setup
    db.clear_outbox()

    async def many():
        await asyncio.gather(
            *[
                call(app, "PUT", f"/invoices/{i}", user=user, total=total)
                for i in range(1, 11)
                for user, total in (("alice", "1.00"), ("bob", "2.00"), (None, "3.00"))
            ]
        )

    asyncio.run(many())
    rows = db.outbox()
    assert len(rows) == 30
    for op, ctx, old, new in rows:
        expected = {1.0: "alice", 2.0: "bob", 3.0: None}[new["total"]]
        assert ctx.get("actor_id") == expected, (ctx, new)


def test_work_outside_a_request_has_no_actor(setup):
    db, _, engine = setup
    db.clear_outbox()
    with sessionmaker(engine).begin() as s:
        s.get(Invoice, 5).customer = "batch job"
    [(op, ctx, old, new)] = db.outbox()
    assert ctx == {}


def adding_app(engine):
    """An app whose PUT /invoices/{id} adds an invoice through a session
    the hook is installed on."""
    Sessions = sessionmaker(engine)
    trailmark.sqlalchemy.install(Sessions.class_)
    app = FastAPI()
    app.add_middleware(TrailmarkMiddleware, get_user=user_from_header)

    @app.put("/invoices/{invoice_id}")
    def add(invoice_id: int, total: str):
        with Sessions.begin() as s:
            s.add(Invoice(id=invoice_id, customer="c", total=total))
        return {"ok": True}

    return app


def test_in_wal_mode_the_context_travels_in_the_wal_before_each_change():
    """The same hook against a database captured from the WAL: the context
    is a logical message in the transaction, right before its change."""
    db = Database("tm_sqla_wal", logical=True)
    engine = create_engine(db.url().replace("postgresql://", "postgresql+psycopg://"), pool_size=1, max_overflow=0)
    try:
        Base.metadata.create_all(engine)
        assert db.install("--mode", "wal", "--tables", "public.invoice").startswith("mode wal")
        app = adding_app(engine)

        asyncio.run(call(app, "PUT", "/invoices/1", user="alice", total="5.00"))
        asyncio.run(call(app, "PUT", "/invoices/2", user="bob", total="6.00"))
        assert db.wal() == [
            ("context", {"actor_id": "alice", "actor_type": "user", "ip": "198.51.100.4", "user_agent": "pytest", "request_id": "req-9"}),
            ("insert", None),
            ("context", {"actor_id": "bob", "actor_type": "user", "ip": "198.51.100.4", "user_agent": "pytest", "request_id": "req-9"}),
            ("insert", None),
        ]
    finally:
        engine.dispose()
        db.drop()


def test_an_application_role_that_owns_nothing_writes_and_is_captured():
    """The usual production setup: capture installed by an admin, the
    application connecting as a role that owns nothing in schema
    `trailmark` and was granted only its table. The hook's check and its
    `set_context` call work, the write goes through, and its change carries
    the request's context. (Before capture version 8 every such request
    failed: `permission denied for schema trailmark`.)"""
    db = Database("tm_sqla_role")
    role = f"{db.name}_app"
    db.sql(f'CREATE ROLE "{role}" LOGIN')
    admin = create_engine(db.url().replace("postgresql://", "postgresql+psycopg://"))
    p = db.params
    engine = create_engine(
        f"postgresql+psycopg://{role}@{p.get('host', '127.0.0.1')}:{p.get('port', '5432')}/{db.name}",
        pool_size=1,
        max_overflow=0,
    )
    try:
        Base.metadata.create_all(admin)
        db.install("--tables", "public.invoice")
        db.sql(f'GRANT SELECT, INSERT, UPDATE, DELETE ON invoice TO "{role}"')
        app = adding_app(engine)

        asyncio.run(call(app, "PUT", "/invoices/1", user="alice", total="5.00"))
        [(op, ctx, _, new)] = db.outbox()
        assert op == "insert" and new["id"] == 1
        assert ctx["actor_id"] == "alice" and ctx["request_id"] == "req-9"
    finally:
        engine.dispose()
        admin.dispose()
        db.drop()
        with psycopg.connect(make_conninfo(db.server, dbname="postgres"), autocommit=True) as c:
            c.execute(f'DROP ROLE IF EXISTS "{role}"')


def test_uninstalling_capture_never_fails_a_pooled_connections_transactions():
    """A pooled connection asked once whether `trailmark.set_context`
    exists; capture uninstalled while the application runs leaves it as a
    no-op, so the application's next writes on that connection go through
    (they failed, `schema "trailmark" does not exist`, until it was
    restarted). Installed again, its writes carry their context again."""
    db = Database("tm_sqla_uninstall")
    engine = create_engine(db.url().replace("postgresql://", "postgresql+psycopg://"), pool_size=1, max_overflow=0)
    try:
        Base.metadata.create_all(engine)
        db.install("--tables", "public.invoice")
        app = adding_app(engine)
        asyncio.run(call(app, "PUT", "/invoices/1", user="alice", total="5.00"))
        db.clear_outbox()
        out = subprocess.run(
            [trailmark_bin(), "capture", "pg", "uninstall", "--source", db.conninfo],
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stderr
        asyncio.run(call(app, "PUT", "/invoices/2", user="bob", total="6.00"))
        db.install("--tables", "public.invoice")
        asyncio.run(call(app, "PUT", "/invoices/3", user="carol", total="7.00"))
        [(op, ctx, _, new)] = db.outbox()
        assert op == "insert" and new["id"] == 3 and ctx["actor_id"] == "carol"
    finally:
        engine.dispose()
        db.drop()


def test_capture_installed_while_the_application_runs_reaches_its_pooled_connections(monkeypatch):
    """A pooled connection that found no `trailmark.set_context` (capture
    not yet installed) asks again once `RECHECK_SECONDS` have passed: in
    WAL mode, where settings alone never reach the drainer, its writes carry
    their context from then on (they went without it until the application
    restarted). The interval is 0 here, so the next transaction asks."""
    db = Database("tm_sqla_late", logical=True)
    engine = create_engine(db.url().replace("postgresql://", "postgresql+psycopg://"), pool_size=1, max_overflow=0)
    try:
        monkeypatch.setattr(trailmark._pgcontext, "RECHECK_SECONDS", 0.0)
        Base.metadata.create_all(engine)
        app = adding_app(engine)
        asyncio.run(call(app, "PUT", "/invoices/1", user="alice", total="5.00"))
        assert db.install("--mode", "wal", "--tables", "public.invoice").startswith("mode wal")
        asyncio.run(call(app, "PUT", "/invoices/2", user="bob", total="6.00"))
        assert db.wal() == [
            ("context", {"actor_id": "bob", "actor_type": "user", "ip": "198.51.100.4", "user_agent": "pytest", "request_id": "req-9"}),
            ("insert", None),
        ]
    finally:
        engine.dispose()
        db.drop()
