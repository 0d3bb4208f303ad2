//! The published RFC 9162 proof cases in `shared/testvectors/rfc9162` (from
//! the transparency-dev/merkle project), read at test time from the folder
//! named by `TRAILMARK_TESTVECTORS`. `.ci/run` always sets it; on a clone
//! without the folder the test says so and checks nothing else.

use std::path::{Path, PathBuf};

use serde_json::Value;
use trailmark_log::{Hash, LeafIndex, TreeSize, verify_consistency, verify_inclusion};

/// Trailmark's deliberate difference (testvectors README, choice 2): hashes
/// are exactly 32 bytes, so this case with 12-byte "roots" is an error here.
const EXPECTED_DIFFERENCES: &[&str] =
    &["consistency/additional/sizes-are-equal-one-and-proof-is-empty.json"];

fn vectors_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("TRAILMARK_TESTVECTORS").map(PathBuf::from)?;
    assert!(
        dir.is_dir(),
        "TRAILMARK_TESTVECTORS={} is not a folder",
        dir.display()
    );
    Some(dir)
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            json_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
    out.sort();
}

fn hash(v: &Value) -> Result<Hash, trailmark_log::Error> {
    Hash::from_base64(v.as_str().unwrap_or_default())
}

fn proof(v: &Value) -> Result<Vec<Hash>, trailmark_log::Error> {
    v.as_array()
        .map_or(Ok(Vec::new()), |a| a.iter().map(hash).collect())
}

fn u64_of(v: &Value) -> u64 {
    v.as_u64().unwrap()
}

fn inclusion_case(c: &Value) -> Result<(), trailmark_log::Error> {
    let (size, index) = (u64_of(&c["treeSize"]), u64_of(&c["leafIdx"]));
    // Positions beyond 2^63 cannot be expressed here: out of range by type.
    let out_of_range = trailmark_log::Error::IndexOutOfRange { index, size };
    let size = TreeSize::new(size).ok_or(out_of_range.clone())?;
    let index = LeafIndex::new(index).ok_or(out_of_range)?;
    verify_inclusion(
        &hash(&c["leafHash"])?,
        index,
        size,
        &proof(&c["proof"])?,
        &hash(&c["root"])?,
    )
}

fn consistency_case(c: &Value) -> Result<(), trailmark_log::Error> {
    let (first, second) = (u64_of(&c["size1"]), u64_of(&c["size2"]));
    let too_large = |size| trailmark_log::Error::SizeTooLarge { size };
    let first = TreeSize::new(first).ok_or(too_large(first))?;
    let second = TreeSize::new(second).ok_or(too_large(second))?;
    verify_consistency(
        first,
        second,
        &proof(&c["proof"])?,
        &hash(&c["root1"])?,
        &hash(&c["root2"])?,
    )
}

#[test]
fn published_rfc9162_proof_cases_give_the_published_verdicts() {
    let Some(dir) = vectors_dir() else {
        eprintln!("TRAILMARK_TESTVECTORS is not set: the published RFC 9162 cases were not run");
        return;
    };
    let root = dir.join("rfc9162");
    let mut files = Vec::new();
    json_files(&root, &mut files);
    assert!(
        files.len() > 100,
        "expected the full case set, found {} files",
        files.len()
    );
    let mut differences = Vec::new();
    for file in &files {
        let name = file
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let case: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
        let result = if name.starts_with("inclusion/") {
            inclusion_case(&case)
        } else {
            consistency_case(&case)
        };
        let want_err = case["wantErr"].as_bool().unwrap();
        if result.is_err() != want_err {
            differences.push(name);
        }
    }
    assert_eq!(
        differences, EXPECTED_DIFFERENCES,
        "cases whose verdict differs"
    );
}
