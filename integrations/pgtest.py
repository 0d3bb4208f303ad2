"""Shared by the framework integration tests: a fresh PostgreSQL database with
Trailmark capture installed by the real `trailmark` binary, and its outbox."""

import json
import os
import subprocess
import uuid

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

SERVER = os.environ.get("TRAILMARK_TEST_PG", "host=127.0.0.1 port=5432 user=postgres")
#: A server with wal_level = logical, for WAL-mode capture (scripts/test makes one).
LOGICAL = os.environ.get("TRAILMARK_TEST_PG_LOGICAL", "host=127.0.0.1 port=5439 user=postgres")


def trailmark_bin():
    path = os.environ.get("TRAILMARK_BIN")
    if not path:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        path = os.path.join(root, "target", "debug", "trailmark")
    if not os.path.exists(path):
        raise RuntimeError(f"{path} not found: build it (cargo build -p trailmark) or set TRAILMARK_BIN")
    return path


class Database:
    def __init__(self, prefix, logical=False):
        self.name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        self.server = LOGICAL if logical else SERVER
        with psycopg.connect(make_conninfo(self.server, dbname="postgres"), autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{self.name}"')
        self.conninfo = make_conninfo(self.server, dbname=self.name)
        self.params = conninfo_to_dict(self.conninfo)

    def url(self):
        """A SQLAlchemy / Rails style URL."""
        p = self.params
        return f"postgresql://{p.get('user', 'postgres')}@{p.get('host', '127.0.0.1')}:{p.get('port', '5432')}/{self.name}"

    def sql(self, statement):
        with psycopg.connect(self.conninfo, autocommit=True) as c:
            c.execute(statement)

    def install(self, *args):
        out = subprocess.run(
            [trailmark_bin(), "capture", "pg", "install", "--source", self.conninfo, *args],
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout

    def outbox(self):
        """(op, context, old_row, new_row) of every captured change, in order."""
        with psycopg.connect(self.conninfo) as c:
            return c.execute(
                "SELECT op, context, old_row, new_row FROM trailmark.outbox ORDER BY id"
            ).fetchall()

    def clear_outbox(self):
        # The outbox's guard refuses a delete that is not capture's own
        # (capture version 17): these tests read the outbox in place of a
        # drainer, so they empty it as a drainer does.
        self.sql("SET trailmark.own_outbox = 'on'; DELETE FROM trailmark.outbox")

    def wal(self):
        """WAL mode: what the slot holds, decoded without consuming it, in
        order: ("context", the JSON a trailmark.set_context message carried)
        or ("insert" | "update" | "delete", None)."""
        with psycopg.connect(self.conninfo) as c:
            rows = c.execute(
                "SELECT data FROM pg_logical_slot_peek_binary_changes("
                " (SELECT slot_name FROM pg_replication_slots WHERE database = current_database()),"
                " NULL, NULL, 'proto_version', '1', 'publication_names', 'trailmark', 'messages', 'true')"
            ).fetchall()
        out = []
        for (data,) in rows:
            data = bytes(data)
            kind = chr(data[0])
            if kind == "M":
                end = data.index(b"\0", 10)
                if data[10:end] == b"trailmark":
                    size = int.from_bytes(data[end + 1 : end + 5], "big")
                    out.append(("context", json.loads(data[end + 5 : end + 5 + size])))
            elif kind in "IUD":
                out.append(({"I": "insert", "U": "update", "D": "delete"}[kind], None))
        return out

    def drop(self):
        with psycopg.connect(make_conninfo(self.server, dbname="postgres"), autocommit=True) as c:
            # A WAL-mode install leaves a slot, which keeps the database from being dropped.
            c.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = %s", [self.name])
            c.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
