//! The RFC 8785 cases in `shared/testvectors/rfc8785` (from
//! cyberphone/json-canonicalization), read at test time from the folder named
//! by `TRAILMARK_TESTVECTORS`. `.ci/run` always sets it; on a clone without
//! the folder the test says so and checks nothing else.

use std::path::PathBuf;

use trailmark_core::CanonicalJson;

#[test]
fn published_rfc8785_cases_canonicalize_to_the_published_bytes() {
    let Some(dir) = std::env::var_os("TRAILMARK_TESTVECTORS").map(PathBuf::from) else {
        eprintln!("TRAILMARK_TESTVECTORS is not set: the published RFC 8785 cases were not run");
        return;
    };
    let input = dir.join("rfc8785/input");
    let mut names: Vec<_> = std::fs::read_dir(&input)
        .unwrap_or_else(|e| panic!("{}: {e}", input.display()))
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert!(
        names.len() >= 6,
        "expected the published cases, found {names:?}"
    );
    for name in names {
        let source = std::fs::read(input.join(&name)).unwrap();
        let expected = std::fs::read(dir.join("rfc8785/output").join(&name)).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&source).unwrap();
        let ours = CanonicalJson::of("case", &value).unwrap();
        assert_eq!(
            String::from_utf8_lossy(ours.as_bytes()),
            String::from_utf8_lossy(&expected),
            "case {}",
            name.to_string_lossy()
        );
    }
}
