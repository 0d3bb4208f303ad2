"""Checks a live server's answers against the JSON Schemas its own
/openapi.json gives them (generated from the handlers' answer types), with
the `jsonschema` package (PyPI): every route that has one, on real data.

    python scripts/api-responses.py URL KEY
"""
import json
import sys
import urllib.request

import jsonschema
import referencing
import referencing.jsonschema

url, key = sys.argv[1], sys.argv[2]


def get(path):
    request = urllib.request.Request(url + path, headers={"Authorization": "Bearer " + key})
    with urllib.request.urlopen(request) as response:
        return json.load(response)


doc = get("/openapi.json")
registry = referencing.Registry().with_resource(
    "urn:openapi", referencing.Resource.from_contents(doc, default_specification=referencing.jsonschema.DRAFT202012)
)


def check(route, path):
    schema = doc["paths"][route]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    validator = jsonschema.Draft202012Validator({"$ref": "urn:openapi#" + schema["$ref"][1:]}, registry=registry)
    body = get(path)
    errors = list(validator.iter_errors(body))
    if errors:
        sys.exit(f"{path}: the answer does not match its schema: {errors[0].message} at {list(errors[0].path)}")
    print(f"{route}: {path} matches its schema")
    return body


typed = [r for r, ops in doc["paths"].items() if "content" in ops.get("get", {}).get("responses", {}).get("200", {})]
page = check("/v1/events", "/v1/events?tenant=acme")
event = page["events"][0]
check("/v1/events/{id}", f"/v1/events/{event['id']}?tenant=acme")
check("/v1/resources/{type}/{id}/history", "/v1/resources/Invoice/1/history?tenant=acme")
checked = {"/v1/events", "/v1/events/{id}", "/v1/resources/{type}/{id}/history"}
missing = set(typed) - checked
if missing:
    sys.exit(f"routes with a schema that this script does not check yet: {sorted(missing)}")
