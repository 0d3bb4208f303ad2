//! The `OpenAPI` document is a snapshot: an API change must change
//! `tests/snapshots/openapi.json` in the same commit. Refresh it with
//! `UPDATE_SNAPSHOTS=1 cargo test -p trailmark-server --test openapi`.
//! And it covers the API: every route served, and no other.

#![allow(clippy::unwrap_used)]

#[test]
fn openapi_document_matches_the_snapshot() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/openapi.json");
    let current =
        serde_json::to_string_pretty(&trailmark_server::openapi::document()).unwrap() + "\n";
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &current).unwrap();
    }
    let snapshot = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        snapshot == current,
        "the OpenAPI document changed; review it and run with UPDATE_SNAPSHOTS=1 to accept:\n{current}"
    );
}

/// The methods `router` serves on each path, read from its source (axum
/// does not list a router's routes): each `.route("path", …)` and the
/// method functions (`get(`, `.post(`, …) up to the next route.
fn served_routes() -> std::collections::BTreeSet<(String, String)> {
    let source = include_str!("../src/lib.rs");
    let start = source.find("pub fn router").unwrap();
    let end = start + source[start..].find(".layer(").unwrap();
    let mut served = std::collections::BTreeSet::new();
    for part in source[start..end].split(".route(").skip(1) {
        let path = part.split('"').nth(1).unwrap();
        // The limits probe's ceiling: built only with its feature for
        // bench/limits, never part of the API.
        if path == "/bench/validate-only" {
            continue;
        }
        let path = path.replace("{*", "{");
        let mut methods = 0;
        for method in ["get", "post", "put", "delete", "patch"] {
            let call = format!("{method}(");
            let named = part.match_indices(&call).any(|(at, _)| {
                !part[..at]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
            });
            if named {
                served.insert((path.clone(), method.to_owned()));
                methods += 1;
            }
        }
        assert!(
            methods > 0,
            "no method read for {path}: has router's form changed?"
        );
    }
    served
}

/// Every route the API serves is in the `OpenAPI` document with each of its
/// methods, and the document names nothing the API does not serve: a route
/// added without its documentation (or documentation left behind by a
/// removed route) fails here, not in a user's generated client.
#[test]
fn the_document_names_every_route_served_and_no_other() {
    let served = served_routes();
    assert!(
        served.len() >= 30,
        "only {} routes read from router",
        served.len()
    );
    let document = trailmark_server::openapi::document();
    let documented: std::collections::BTreeSet<(String, String)> = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|k| ["get", "post", "put", "delete", "patch"].contains(&k.as_str()))
                .map(|method| (path.clone(), method.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let not_served: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && not_served.is_empty(),
        "served but not in the OpenAPI document: {undocumented:?}; documented but not served: {not_served:?}"
    );
}
