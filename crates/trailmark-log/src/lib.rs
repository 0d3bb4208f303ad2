//! Trailmark's ledger math, with no I/O: RFC 9162 Merkle trees, their proofs,
//! C2SP signed notes and checkpoints, and offline-checkable receipts.
//!
//! Architecture invariant: nothing here touches a file, socket, clock or
//! random number generator. Keys are made from seeds the caller supplies, and
//! stores reach the tree through [`NodeSource`].

mod checkpoint;
mod compact;
mod cosignature;
mod error;
mod hash;
mod memory;
mod note;
mod proof;
mod receipt;
mod source;
mod tiles;
mod tree;
mod verify;

pub use checkpoint::{Checkpoint, SignedCheckpoint};
pub use compact::CompactRange;
pub use cosignature::{AddCheckpoint, CosignatureKey, Cosigner, MAX_PROOF_LINES};
pub use error::Error;
pub use hash::{HASH_LEN, Hash, empty_root, leaf_hash, node_hash};
pub use memory::{MemoryNodes, MemoryTree};
pub use note::{KeyName, Note, NoteSignature, SigningKey, VerifierKey};
pub use proof::{Plan, consistency_proof, inclusion_proof, root_at};
pub use receipt::Receipt;
pub use source::NodeSource;
pub use tiles::{TILE_HEIGHT, TILE_WIDTH, TilePath, entry_bundle};
pub use tree::{LeafIndex, MAX_TREE_SIZE, NodeId, TreeSize};
pub use verify::{
    consistency_proof_len, inclusion_proof_len, root_from_inclusion_proof, verify_consistency,
    verify_inclusion,
};
