"""`trailmark.asgi` and `trailmark.sqlalchemy` in a FastAPI app on a real
PostgreSQL with capture installed, against a real `trailmark serve` that
drains it: sync and async endpoints, a pooled engine, trusted proxies."""

from __future__ import annotations

import asyncio
import subprocess

import httpx
from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy import Integer, String, create_engine, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

import pytest
import trailmark
import trailmark.sqlalchemy
from conftest import Server, create_database, drop_database, trailmark_bin, until
from trailmark.asgi import TrailmarkMiddleware



class Base(DeclarativeBase):
    pass


class Invoice(Base):
    __tablename__ = "invoice"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String)


def user_from_header(scope):
    """The test's stand-in for authentication: the user an `X-User` header names."""
    for k, v in scope["headers"]:
        if k == b"x-user":
            return {"actor_id": v.decode(), "actor_name": f"user {v.decode()}"}
    return None


@pytest.fixture(scope="module")
def app_and_server(tmp_path_factory):
    name, conninfo = create_database("tm_pkg_fastapi")
    p = conninfo_to_dict(conninfo)
    url = f"postgresql+psycopg://{p.get('user', 'postgres')}@{p.get('host', '127.0.0.1')}:{p.get('port', '5432')}/{name}"
    engine = create_engine(url, pool_size=2, max_overflow=0)
    Base.metadata.create_all(engine)
    out = subprocess.run(
        [trailmark_bin(), "capture", "pg", "install", "--source", conninfo, "--tables", "public.invoice"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    tmp = tmp_path_factory.mktemp("fastapi")
    server = Server(str(tmp / "data"), extra=["--capture-source", conninfo])
    client = trailmark.Client(server.url, server.admin, spool_path=str(tmp / "spool.sqlite3"), flush_interval=0.05)
    Sessions = sessionmaker(engine)
    listener = trailmark.sqlalchemy.install(Sessions.class_)
    with Sessions.begin() as s:
        s.add_all([Invoice(id=i, status="draft") for i in range(1, 6)])

    app = FastAPI()
    app.add_middleware(
        TrailmarkMiddleware,
        get_user=user_from_header,
        trusted_proxies=["10.0.0.0/8"],
        tenant="billing",
    )

    @app.put("/invoices/{invoice_id}")
    def send(invoice_id: int):  # sync: FastAPI runs it in its threadpool
        with Sessions.begin() as s:
            s.get(Invoice, invoice_id).status = "sent"
        return {"ok": True}

    @app.post("/invoices/void")
    async def void_all():  # async, writing through the threadpool
        def write():
            with Sessions.begin() as s:
                s.execute(update(Invoice).where(Invoice.id > 3).values(status="void"))

        await run_in_threadpool(write)
        client.record("invoice.export", resource={"type": "Report", "id": "void"})
        return {"ok": True}

    yield app, server, client
    client.close()
    from sqlalchemy import event

    event.remove(Sessions.class_, "after_begin", listener)
    engine.dispose()
    server.stop()
    drop_database(name)


async def call(app, method, path, peer, headers):
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
        return await http.request(method, path, headers=headers)


def test_sync_and_async_endpoints_are_captured_with_the_actor_and_the_proxied_ip(app_and_server):
    app, server, client = app_and_server

    async def requests():
        return await asyncio.gather(
            call(app, "PUT", "/invoices/1", "10.0.0.7", {"x-user": "u-1", "x-forwarded-for": "203.0.113.50"}),
            call(app, "PUT", "/invoices/2", "198.51.100.2", {"x-user": "u-2", "x-forwarded-for": "203.0.113.50"}),
            call(app, "POST", "/invoices/void", "10.0.0.7", {"x-user": "u-3", "x-forwarded-for": "203.0.113.51"}),
        )

    assert [r.status_code for r in asyncio.run(requests())] == [200, 200, 200]
    assert client.flush()
    updates = until(
        "the captured updates",
        lambda: (lambda f: f if len(f) >= 4 else None)(server.events("tenant=billing&action=update")),
    )
    by_record = {e["resource"]["id"]: e for e in updates}
    assert by_record["1"]["actor"]["id"] == "u-1" and by_record["1"]["context"]["ip"] == "203.0.113.50"
    # Not from a trusted proxy: the peer's address, not X-Forwarded-For.
    assert by_record["2"]["actor"]["id"] == "u-2" and by_record["2"]["context"]["ip"] == "198.51.100.2"
    assert {by_record[i]["actor"]["id"] for i in ("4", "5")} == {"u-3"}
    [export] = server.events("tenant=billing&action=invoice.export")
    assert export["actor"] == {"id": "u-3", "name": "user u-3", "type": "user"}
    assert export["context"]["ip"] == "203.0.113.51"
