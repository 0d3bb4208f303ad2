"""Checks a live server's answers against the JSON Schemas its own
/openapi.json gives them (generated from the handlers' answer types), with
the `jsonschema` package (PyPI): every route that has one, on real data.

    python scripts/api-responses.py URL KEY
"""
import json
import sys
import time
import urllib.error
import urllib.request

import jsonschema
import referencing
import referencing.jsonschema

url, key = sys.argv[1], sys.argv[2]


def get(path, body=None, method=None):
    headers = {"Authorization": "Bearer " + key, "Content-Type": "application/json"}
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, headers=headers, method=method)
    with urllib.request.urlopen(request) as response:
        return json.load(response)


doc = get("/openapi.json")
registry = referencing.Registry().with_resource(
    "urn:openapi", referencing.Resource.from_contents(doc, default_specification=referencing.jsonschema.DRAFT202012)
)


def check(route, path, method="get", status="200", send=None):
    schema = doc["paths"][route][method]["responses"][status]["content"]["application/json"]["schema"]
    validator = jsonschema.Draft202012Validator({"$ref": "urn:openapi#" + schema["$ref"][1:]}, registry=registry)
    body = get(path, send, method.upper())
    errors = list(validator.iter_errors(body))
    if errors:
        sys.exit(f"{path}: the answer does not match its schema: {errors[0].message} at {list(errors[0].path)}")
    print(f"{route}: {path} matches its schema")
    return body


typed = {
    (route, method, status)
    for route, ops in doc["paths"].items()
    for method, op in ops.items()
    for status, answer in op.get("responses", {}).items()
    if status.startswith("2") and "content" in answer and "application/json" in answer["content"]
}
page = check("/v1/events", "/v1/events?tenant=acme")
event = page["events"][0]
checked = {
    ("/v1/events", "get", "200"),
    ("/v1/events/{id}", "get", "200"),
    ("/v1/resources/{type}/{id}/history", "get", "200"),
    ("/v1/entries", "get", "200"),
    ("/v1/stats", "get", "200"),
    ("/v1/tenants", "get", "200"),
    ("/v1/checkpoints", "get", "200"),
    ("/v1/proofs/inclusion", "get", "200"),
    ("/v1/proofs/consistency", "get", "200"),
    ("/v1/events", "post", "201"),
    ("/v1/keys", "get", "200"),
    ("/v1/keys", "post", "201"),
    ("/v1/keys/{id}", "delete", "200"),
    ("/v1/signing-keys", "get", "200"),
    ("/v1/retention", "put", "200"),
    ("/v1/retention", "get", "200"),
    ("/v1/retention", "delete", "200"),
    ("/v1/retention/cleanup", "post", "200"),
    ("/v1/holds", "post", "201"),
    ("/v1/holds", "get", "200"),
    ("/v1/holds/{id}", "delete", "200"),
    ("/v1/erasures", "post", "200"),
    ("/v1/alert-rules", "get", "200"),
    ("/v1/alert-rules", "put", "200"),
    ("/v1/webhooks", "put", "200"),
    ("/v1/webhooks", "get", "200"),
    ("/v1/alerts", "get", "200"),
    ("/v1/alerts/{id}", "get", "200"),
    ("/v1/alerts/{id}/ack", "post", "200"),
    ("/v1/alerts/{id}/redeliver", "post", "202"),
}
check("/v1/events/{id}", f"/v1/events/{event['id']}?tenant=acme")
check("/v1/resources/{type}/{id}/history", "/v1/resources/Invoice/1/history?tenant=acme")
check("/v1/entries", "/v1/entries?tenant=acme&start=0&end=3")
check("/v1/stats", "/v1/stats?tenant=acme")
check("/v1/tenants", "/v1/tenants")
check("/v1/checkpoints", "/v1/checkpoints?tenant=acme")
check("/v1/proofs/inclusion", "/v1/proofs/inclusion?tenant=acme&index=1&size=3")
check("/v1/proofs/consistency", "/v1/proofs/consistency?tenant=acme&first=1&second=3")
new = {"tenant": "acme", "actor": {"id": "u9", "type": "user"}, "action": "login"}
check("/v1/events", "/v1/events", method="post", status="201", send=[new])
check("/v1/signing-keys", "/v1/signing-keys")
created = check("/v1/keys", "/v1/keys", method="post", status="201", send={"name": "schema check", "scopes": "read"})
check("/v1/keys", "/v1/keys")
check("/v1/keys/{id}", f"/v1/keys/{created['id']}", method="delete")
policy = {"tenant": "acme", "resource_type": "Invoice", "max_age_days": 30}
check("/v1/retention", "/v1/retention", method="put", send=policy)
hold = check("/v1/holds", "/v1/holds", method="post", status="201",
             send={"tenant": "acme", "resource": "Invoice:1", "reason": "case 1"})
check("/v1/retention", "/v1/retention")
check("/v1/holds", "/v1/holds")
check("/v1/retention/cleanup", "/v1/retention/cleanup", method="post", send={"dry_run": True})
erased = check("/v1/erasures", "/v1/erasures", method="post",
               send={"tenant": "acme", "actor": "u2", "reason": "request 1"})
if erased["entries"] != 1:
    sys.exit(f"the erasure of u2 removed {erased['entries']} entries, expected 1")
page = check("/v1/events", "/v1/events?tenant=acme&actor=u2")
if page["events"][0]["removal"]["reason"] != "request 1":
    sys.exit(f"an erased event does not say why: {page['events'][0]}")
check("/v1/resources/{type}/{id}/history", "/v1/resources/Invoice/2/history?tenant=acme")
check("/v1/holds/{id}", f"/v1/holds/{hold['id']}", method="delete")
check("/v1/retention", "/v1/retention?tenant=acme&resource_type=Invoice", method="delete")

# Alerts: the rules as stored read back, an endpoint (nobody listens: its
# one attempt fails), then a key created raises a Trailmark-events alert.
rules = check("/v1/alert-rules", "/v1/alert-rules")
check("/v1/alert-rules", "/v1/alert-rules", method="put", send=rules["rules"])
check("/v1/webhooks", "/v1/webhooks", method="put",
      send={"webhooks": [{"name": "nobody", "url": "http://127.0.0.1:9/", "max_attempts": 1}]})
check("/v1/webhooks", "/v1/webhooks")
raising = get("/v1/keys", {"name": "raises an alert", "scopes": "read"}, "POST")
record = get(f"/v1/events?tenant=_system&action=admin.key.create&resource_id={raising['id']}")["events"][0]


def new_key_alert():
    """The alert of the key just created (raised after the endpoint was set)."""
    for a in get("/v1/alerts?rule=trailmark_events")["alerts"]:
        if record["id"] in a["events"]:
            return a
    return None


for _ in range(100):
    alert = new_key_alert()
    if alert:
        break
    time.sleep(0.1)
else:
    sys.exit("no alert for the key created")
check("/v1/alerts", "/v1/alerts?rule=trailmark_events")
check("/v1/alerts/{id}", f"/v1/alerts/{alert['id']}")
check("/v1/alerts/{id}/redeliver", f"/v1/alerts/{alert['id']}/redeliver", method="post", status="202", send={})
check("/v1/alerts/{id}/ack", f"/v1/alerts/{alert['id']}/ack", method="post", send={"note": "schema check"})


def check_error(route, path, status, key_used=True):
    """An error answer matches the schema the document gives its status."""
    schema = doc["paths"][route]["get"]["responses"][status]["content"]["application/json"]["schema"]
    validator = jsonschema.Draft202012Validator({"$ref": "urn:openapi#" + schema["$ref"][1:]}, registry=registry)
    headers = {"Authorization": "Bearer " + key} if key_used else {}
    try:
        urllib.request.urlopen(urllib.request.Request(url + path, headers=headers))
        sys.exit(f"{path}: expected {status}")
    except urllib.error.HTTPError as e:
        if str(e.code) != status:
            sys.exit(f"{path}: expected {status}, got {e.code}")
        body = json.load(e)
    errors = list(validator.iter_errors(body))
    if errors:
        sys.exit(f"{path}: the {status} does not match its schema: {errors[0].message}")
    print(f"{route}: {path} -> {status} matches its schema")


check_error("/v1/events", "/v1/events?actr=alice", "400")
check_error("/v1/events", "/v1/events", "401", key_used=False)
check_error("/v1/proofs/inclusion", "/v1/proofs/inclusion?tenant=acme&index=99&size=3", "400")
missing = typed - checked
if missing:
    sys.exit(f"routes with a schema that this script does not check yet: {sorted(missing)}")
