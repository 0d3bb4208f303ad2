//! The reference tree and the published proofs over it (RFC 6962 test data as
//! published by the transparency-dev/merkle project).

use trailmark_log::{empty_root, inclusion_proof_len, verify_consistency, verify_inclusion};

use crate::{b64, hx, index, reference_tree, size};

/// Published roots of the reference tree at sizes 0 to 8.
const ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// Published inclusion proofs: (leaf index, tree size, proof).
pub(crate) const INCLUSION: &[(u64, u64, &[&str])] = &[
    (0, 1, &[]),
    (
        0,
        8,
        &[
            "lqKW0iTyhcZ77pPDD4owkVfw2qNdxbh+QQt4YwoJz8c=",
            "Xwg/ChozygdqlSeYMlgNs+DvRYS9/x9UyKNg9Q3jAx4=",
            "a0eq8p7jwq+a+Im8H7klTavTEXfxYjLdaqsDXKOb9uQ=",
        ],
    ),
    (
        5,
        8,
        &[
            "vBoGQ7EuTS18d5GPROD095qDi2z57FtcKD4fTYhZnms=",
            "yoVOoSjtBQtBs1/8G4e46yveRh6eO1WW7Oa51ZdaCuA=",
            "037kGJdt2VdTwcc4Yrk5j6Kiz5tP8P3+izDNlSCWFLc=",
        ],
    ),
    (2, 3, &["+sVCA+fMaWzw38tCySodnbr3CtnmIfS9jZhmLwDjwSU="]),
    (
        1,
        5,
        &[
            "bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0=",
            "Xwg/ChozygdqlSeYMlgNs+DvRYS9/x9UyKNg9Q3jAx4=",
            "vBoGQ7EuTS18d5GPROD095qDi2z57FtcKD4fTYhZnms=",
        ],
    ),
];

/// Published consistency proofs: (first size, second size, proof).
pub(crate) const CONSISTENCY: &[(u64, u64, &[&str])] = &[
    (1, 1, &[]),
    (
        1,
        8,
        &[
            "lqKW0iTyhcZ77pPDD4owkVfw2qNdxbh+QQt4YwoJz8c=",
            "Xwg/ChozygdqlSeYMlgNs+DvRYS9/x9UyKNg9Q3jAx4=",
            "a0eq8p7jwq+a+Im8H7klTavTEXfxYjLdaqsDXKOb9uQ=",
        ],
    ),
    (
        6,
        8,
        &[
            "DrxdNDf74tsVi58Sah0RjjCBgQMdCpSfje3t68VY72o=",
            "yoVOoSjtBQtBs1/8G4e46yveRh6eO1WW7Oa51ZdaCuA=",
            "037kGJdt2VdTwcc4Yrk5j6Kiz5tP8P3+izDNlSCWFLc=",
        ],
    ),
    (
        2,
        5,
        &[
            "Xwg/ChozygdqlSeYMlgNs+DvRYS9/x9UyKNg9Q3jAx4=",
            "vBoGQ7EuTS18d5GPROD095qDi2z57FtcKD4fTYhZnms=",
        ],
    ),
    (
        6,
        7,
        &[
            "DrxdNDf74tsVi58Sah0RjjCBgQMdCpSfje3t68VY72o=",
            "sIaT7C5yFZcTBkHoIR5+7cy0wmQTlj7ubB4u0W/7Gl8=",
            "037kGJdt2VdTwcc4Yrk5j6Kiz5tP8P3+izDNlSCWFLc=",
        ],
    ),
];

pub(crate) fn root(n: u64) -> trailmark_log::Hash {
    hx(ROOTS[usize::try_from(n).unwrap()])
}

#[test]
fn reference_tree_has_the_published_root_at_every_size() {
    for n in 0..=8 {
        let tree = reference_tree(n);
        assert_eq!(tree.root(), root(n as u64), "size {n}");
    }
    assert_eq!(root(0), empty_root());
    let full = reference_tree(8);
    for n in 0..=8u64 {
        assert_eq!(
            full.root_at(size(n)).unwrap(),
            root(n),
            "root_at({n}) from size 8"
        );
    }
}

#[test]
fn published_inclusion_proofs_are_generated_exactly_and_verify() {
    let tree = reference_tree(8);
    for &(leaf, n, published) in INCLUSION {
        let published: Vec<_> = published.iter().map(|h| b64(h)).collect();
        let ours = tree.inclusion_proof(index(leaf), size(n)).unwrap();
        assert_eq!(ours, published, "proof of {leaf} in {n}");
        let leaf_hash = tree
            .nodes()
            .get(trailmark_log::NodeId::new(0, leaf))
            .unwrap();
        verify_inclusion(&leaf_hash, index(leaf), size(n), &published, &root(n)).unwrap();
        assert_eq!(
            inclusion_proof_len(index(leaf), size(n)).unwrap(),
            published.len()
        );
    }
}

#[test]
fn published_consistency_proofs_are_generated_exactly_and_verify() {
    let tree = reference_tree(8);
    for &(first, second, published) in CONSISTENCY {
        let published: Vec<_> = published.iter().map(|h| b64(h)).collect();
        let ours = tree.consistency_proof(size(first), size(second)).unwrap();
        assert_eq!(ours, published, "proof {first} -> {second}");
        verify_consistency(
            size(first),
            size(second),
            &published,
            &root(first),
            &root(second),
        )
        .unwrap();
    }
}

#[test]
fn every_proof_over_the_reference_tree_verifies() {
    let tree = reference_tree(8);
    for n in 1..=8u64 {
        for leaf in 0..n {
            let proof = tree.inclusion_proof(index(leaf), size(n)).unwrap();
            let leaf_hash = tree
                .nodes()
                .get(trailmark_log::NodeId::new(0, leaf))
                .unwrap();
            verify_inclusion(&leaf_hash, index(leaf), size(n), &proof, &root(n)).unwrap();
        }
        for m in 0..=n {
            let proof = tree.consistency_proof(size(m), size(n)).unwrap();
            verify_consistency(size(m), size(n), &proof, &root(m), &root(n)).unwrap();
        }
    }
}

#[test]
fn consistency_from_the_empty_tree_needs_the_empty_root_and_no_proof() {
    verify_consistency(size(0), size(8), &[], &root(0), &root(8)).unwrap();
    assert_eq!(
        verify_consistency(size(0), size(8), &[], &root(1), &root(8)),
        Err(trailmark_log::Error::EmptyTreeMismatch)
    );
    assert!(verify_consistency(size(0), size(8), &[root(0)], &root(0), &root(8)).is_err());
    assert_eq!(
        verify_consistency(size(9), size(8), &[], &root(1), &root(8)),
        Err(trailmark_log::Error::SizesOutOfOrder {
            first: 9,
            second: 8
        })
    );
}
