//! Checking proofs (RFC 9162 §2.1.3.2 and §2.1.4.2). Pure functions of the
//! proof and the claimed roots; nothing here reads a store.

use crate::hash::{empty_root, node_hash};
use crate::{Error, Hash, LeafIndex, TreeSize};

/// Number of bits needed to write `x` (0 for 0).
fn bit_len(x: u64) -> u32 {
    64 - x.leading_zeros()
}

/// The exact number of hashes in the inclusion proof of `index` in a tree of
/// `size` leaves (`index < size`).
pub fn inclusion_proof_len(index: LeafIndex, size: TreeSize) -> Result<usize, Error> {
    let (index, size) = (index.get(), size.get());
    if index >= size {
        return Err(Error::IndexOutOfRange { index, size });
    }
    let inner = bit_len(index ^ (size - 1));
    let border = (index >> inner).count_ones();
    Ok((inner + border) as usize)
}

/// The exact number of hashes in the consistency proof from `first` to
/// `second` leaves.
pub fn consistency_proof_len(first: TreeSize, second: TreeSize) -> Result<usize, Error> {
    let (old, new) = (first.get(), second.get());
    if old > new {
        return Err(Error::SizesOutOfOrder {
            first: old,
            second: new,
        });
    }
    if old == 0 || old == new {
        return Ok(0);
    }
    let inner = bit_len((old - 1) ^ (new - 1));
    let border = ((old - 1) >> inner).count_ones();
    let shift = old.trailing_zeros();
    // The old tree's root is the proof's seed when `old` is a power of two;
    // otherwise the proof starts with the hash of a subtree of 2^shift leaves.
    let seed = u32::from(!old.is_power_of_two());
    Ok((seed + inner - shift + border) as usize)
}

/// Computes the root that an inclusion proof leads to.
pub fn root_from_inclusion_proof(
    leaf: &Hash,
    index: LeafIndex,
    size: TreeSize,
    proof: &[Hash],
) -> Result<Hash, Error> {
    let expected = inclusion_proof_len(index, size)?;
    if proof.len() != expected {
        return Err(Error::ProofLength {
            expected,
            got: proof.len(),
        });
    }
    let mut f = index.get();
    let mut s = size.get() - 1;
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return Err(Error::ProofLength {
                expected,
                got: proof.len(),
            });
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(Error::ProofLength {
            expected,
            got: proof.len(),
        });
    }
    Ok(r)
}

/// Checks that `leaf` is leaf `index` of the tree of `size` leaves whose
/// root is `root`.
pub fn verify_inclusion(
    leaf: &Hash,
    index: LeafIndex,
    size: TreeSize,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), Error> {
    let computed = root_from_inclusion_proof(leaf, index, size, proof)?;
    if computed == *root {
        Ok(())
    } else {
        Err(Error::RootMismatch)
    }
}

/// Checks that the tree of `first` leaves with root `first_root` is a prefix
/// of the tree of `second` leaves with root `second_root`.
///
/// The empty tree is a prefix of every tree: from `first = 0` the proof must
/// be empty and `first_root` must be `SHA-256("")`.
pub fn verify_consistency(
    first: TreeSize,
    second: TreeSize,
    proof: &[Hash],
    first_root: &Hash,
    second_root: &Hash,
) -> Result<(), Error> {
    let expected = consistency_proof_len(first, second)?;
    if proof.len() != expected {
        return Err(Error::ProofLength {
            expected,
            got: proof.len(),
        });
    }
    let (old, new) = (first.get(), second.get());
    if old == 0 {
        return if *first_root == empty_root() {
            Ok(())
        } else {
            Err(Error::EmptyTreeMismatch)
        };
    }
    if old == new {
        return if first_root == second_root {
            Ok(())
        } else {
            Err(Error::EqualSizesDiffer { size: old })
        };
    }
    let mut path = proof.iter();
    let seed = if old.is_power_of_two() {
        *first_root
    } else {
        *path.next().ok_or(Error::ProofLength { expected, got: 0 })?
    };
    let mut f = old - 1;
    let mut s = new - 1;
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (seed, seed);
    for c in path {
        if s == 0 {
            return Err(Error::ProofLength {
                expected,
                got: proof.len(),
            });
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(Error::ProofLength {
            expected,
            got: proof.len(),
        });
    }
    if fr != *first_root {
        return Err(Error::FirstRootMismatch);
    }
    if sr != *second_root {
        return Err(Error::SecondRootMismatch);
    }
    Ok(())
}
