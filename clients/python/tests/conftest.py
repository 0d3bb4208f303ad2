"""A real `trailmark serve` for the client tests (TRAILMARK_BIN, else the
workspace's debug build), on a data dir of the test's own."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def trailmark_bin() -> str:
    path = os.environ.get("TRAILMARK_BIN") or os.path.join(ROOT, "target", "debug", "trailmark")
    if not os.path.exists(path):
        raise RuntimeError(f"{path} not found: cargo build -p trailmark, or set TRAILMARK_BIN")
    return path


PG = os.environ.get("TRAILMARK_TEST_PG", "host=127.0.0.1 port=5432 user=postgres")


def create_database(prefix: str) -> tuple[str, str]:
    """A scratch PostgreSQL database (TRAILMARK_TEST_PG): its name and
    conninfo. Drop it with `drop_database`."""
    import uuid

    import psycopg
    from psycopg.conninfo import make_conninfo

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(make_conninfo(PG, dbname="postgres"), autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    return name, make_conninfo(PG, dbname=name)


def drop_database(name: str) -> None:
    import psycopg
    from psycopg.conninfo import make_conninfo

    with psycopg.connect(make_conninfo(PG, dbname="postgres"), autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def until(what, check, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class Server:
    def __init__(self, data_dir: str, extra: list[str] | None = None) -> None:
        self.data_dir = data_dir
        self.extra = extra or []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.start()
        with open(os.path.join(data_dir, "bootstrap-admin.key")) as f:
            self.admin = f.read().strip()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [trailmark_bin(), "serve", "--data-dir", self.data_dir, "--listen", f"127.0.0.1:{self.port}", *self.extra],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        until("the server", self.healthy)

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def get(self, path: str) -> dict:
        req = urllib.request.Request(self.url + path, headers={"authorization": f"Bearer {self.admin}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def post(self, path: str, body) -> dict:
        req = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode(),
            method="POST",
            headers={"authorization": f"Bearer {self.admin}", "content-type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def events(self, query: str) -> list[dict]:
        """Every event matching `query`, following the cursor."""
        out, cursor = [], ""
        while True:
            page = self.get(f"/v1/events?{query}&limit=1000{cursor}")
            out.extend(page["events"])
            if not page.get("next_cursor"):
                return out
            cursor = f"&cursor={page['next_cursor']}"


@pytest.fixture
def server(tmp_path):
    s = Server(str(tmp_path / "data"))
    yield s
    s.stop()
