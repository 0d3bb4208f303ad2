"""One side of bench/django/run.sh: a Django request that writes one row,
timed in-process (Django's test client: the server-side cost, which is what
the package adds), with the package installed (`--with`) or not
(`--without`). Prints one latency per line, in microseconds."""

import os
import sys
import time

side = sys.argv[1]
count = int(sys.argv[2])
os.environ["DJANGO_SETTINGS_MODULE"] = "bench_site"
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ["BENCH_WITH"] = "1" if side == "--with" else "0"

import django  # noqa: E402

django.setup()
from django.contrib.auth.models import User  # noqa: E402
from django.test import Client  # noqa: E402

user, _ = User.objects.get_or_create(username="bench")
client = Client(REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="203.0.113.9", HTTP_USER_AGENT="bench")
client.force_login(user)
for n in range(200):  # warm-up: connections, caches
    client.post("/write", {"n": n})
out = []
for n in range(count):
    start = time.perf_counter_ns()
    answer = client.post("/write", {"n": n})
    out.append((time.perf_counter_ns() - start) // 1000)
    assert answer.status_code == 200, answer.content
print("\n".join(map(str, out)))
