//! The `OpenAPI` document is a snapshot: an API change must change
//! `tests/snapshots/openapi.json` in the same commit. Refresh it with
//! `UPDATE_SNAPSHOTS=1 cargo test -p trailmark-server --test openapi`.

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
