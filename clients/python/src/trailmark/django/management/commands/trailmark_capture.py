"""``manage.py trailmark_capture pause|resume --actor ID [--reason R]
[--tables schema.table,...] [--database ALIAS]``: stops or restarts
capture of the application's tables without uninstalling it, by running
``trailmark capture pg pause|resume`` (the binary: ``TRAILMARK_BIN``, else
``trailmark`` on the PATH) against the database Django writes to. The switch
is recorded in the trail (``capture.paused`` / ``capture.resumed``), so
turning auditing off is itself audited."""

from __future__ import annotations

import shutil
import subprocess

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connections


def conninfo(alias: str) -> str:
    """The libpq connection string of a Django database."""
    s = connections[alias].settings_dict
    if connections[alias].vendor != "postgresql":
        raise CommandError(f"database {alias}: capture needs PostgreSQL")
    parts = {
        "host": s.get("HOST") or None,
        "port": str(s.get("PORT") or "") or None,
        "user": s.get("USER") or None,
        "password": s.get("PASSWORD") or None,
        "dbname": s.get("NAME"),
    }

    def quote(v: str) -> str:
        return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"

    return " ".join(f"{k}={quote(v)}" for k, v in parts.items() if v)


class Command(BaseCommand):
    help = "Pause or resume Trailmark capture of this application's tables (recorded in the trail)."

    def add_arguments(self, parser):
        parser.add_argument("switch", choices=["pause", "resume"])
        parser.add_argument("--actor", required=True, help="who switches capture (recorded)")
        parser.add_argument("--reason", help="why (recorded, kept forever: not personal data)")
        parser.add_argument("--tables", help="only these covered tables, comma-separated schema.table")
        parser.add_argument("--database", default="default")

    def handle(self, *args, **options):
        binary = getattr(settings, "TRAILMARK_BIN", None) or shutil.which("trailmark")
        if not binary:
            raise CommandError("TRAILMARK_BIN: give the path of the trailmark binary (it is not on the PATH)")
        cmd = [
            binary,
            "capture",
            "pg",
            options["switch"],
            "--source",
            conninfo(options["database"]),
            "--actor",
            options["actor"],
        ]
        if options.get("reason"):
            cmd += ["--reason", options["reason"]]
        if options.get("tables"):
            cmd += ["--tables", options["tables"]]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise CommandError(done.stderr.strip() or f"trailmark exited {done.returncode}")
        self.stdout.write(done.stdout.rstrip())
