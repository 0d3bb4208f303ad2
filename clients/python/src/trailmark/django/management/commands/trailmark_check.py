"""``manage.py trailmark_check``: what is captured in each database, and
whether the Trailmark server answers and takes the key."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from ... import conf


class Command(BaseCommand):
    help = "Tell what Trailmark captures and whether its server answers and takes the key."

    def handle(self, *args, **options):
        c = conf.get()
        problems = []
        self.stdout.write(f"enabled: {c.enabled}")
        for alias in connections:
            problems += self._database(alias)
        if not c.url:
            problems.append("TRAILMARK_URL is not set: events (logins, admin actions) are not sent")
        else:
            problems += self._server(c)
        if problems:
            raise CommandError("; ".join(problems))
        self.stdout.write("ok")

    def _database(self, alias):
        conn = connections[alias]
        if conn.vendor != "postgresql":
            self.stdout.write(f"database {alias}: {conn.vendor}, not captured (capture needs PostgreSQL)")
            return []
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('trailmark.tables') IS NOT NULL")
            if not cur.fetchone()[0]:
                self.stdout.write(f"database {alias}: capture not installed (trailmark capture pg install)")
                return []
            cur.execute(
                "SELECT schema_name || '.' || table_name, exclude FROM trailmark.tables ORDER BY 1"
            )
            for table, exclude in cur.fetchall():
                excluded = f", excluding {', '.join(exclude)}" if exclude else ""
                self.stdout.write(f"database {alias}: captures {table}{excluded}")
            cur.execute("SELECT count(*) FROM trailmark.outbox")
            self.stdout.write(f"database {alias}: {cur.fetchone()[0]} changes wait in the outbox")
        return []

    def _server(self, c):
        base = c.url.rstrip("/")
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=5) as r:
                self.stdout.write(f"server {base}: answers ({r.status})")
        except (urllib.error.URLError, OSError) as e:
            return [f"the server {base} does not answer: {e}"]
        # An empty batch: 400 means the key was accepted (and the batch
        # refused as empty); 401 and 403 say what is wrong with the key.
        req = urllib.request.Request(
            base + "/v1/events",
            data=json.dumps([]).encode(),
            method="POST",
            headers={"authorization": f"Bearer {c.key}", "content-type": "application/json"},
        )
        try:
            urllib.request.urlopen(req, timeout=5).read()
        except urllib.error.HTTPError as e:
            if e.code in (401, 403):
                return [f"the server refused TRAILMARK_KEY ({e.code}): give a key with the ingest scope"]
        self.stdout.write("key: accepted for ingest")
        return []
