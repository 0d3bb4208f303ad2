"""Gives the server on 127.0.0.1:7979 N tenants of one entry each, 1000 events a request.

    python3 bench/tenants/load.py N [FIRST]    (the key in $TRAILMARK_KEY; tenants t0..t(N-1),
                                                the first named FIRST instead when given)
"""

import json
import os
import sys
import urllib.request

n = int(sys.argv[1])
first = sys.argv[2] if len(sys.argv) > 2 else "t0"
key = os.environ["TRAILMARK_KEY"]
for start in range(0, n, 1000):
    body = json.dumps([
        {"tenant": first if i == 0 else f"t{i}", "actor": {"id": f"u{i}", "type": "user"},
         "action": "login", "resource": {"type": "Account", "id": str(i)}}
        for i in range(start, min(n, start + 1000))
    ]).encode()
    req = urllib.request.Request("http://127.0.0.1:7979/v1/events", data=body, headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        assert r.status in (200, 201), r.status
