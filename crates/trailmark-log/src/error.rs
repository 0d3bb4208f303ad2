use crate::tree::NodeId;

/// Everything that can go wrong in this crate. Each variant says what was
/// wrong and carries the values that make the message actionable.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    #[error("a hash must be 32 bytes, got {got}")]
    HashLength { got: usize },
    #[error("not a base64 or hex SHA-256 hash: {text:?}")]
    HashEncoding { text: String },

    #[error("leaf index {index} is outside a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("tree size {size} is larger than the supported maximum 2^63")]
    SizeTooLarge { size: u64 },
    #[error("the first tree size {first} is larger than the second {second}")]
    SizesOutOfOrder { first: u64, second: u64 },
    #[error("proof has {got} hashes, but the proof for these positions has {expected}")]
    ProofLength { expected: usize, got: usize },
    #[error("the proof does not lead to the expected root hash")]
    RootMismatch,
    #[error("the consistency proof does not reproduce the first tree's root")]
    FirstRootMismatch,
    #[error("the consistency proof does not reproduce the second tree's root")]
    SecondRootMismatch,
    #[error("trees of equal size {size} must have equal roots and an empty proof")]
    EqualSizesDiffer { size: u64 },
    #[error("the empty tree's root must be SHA-256(\"\") and its consistency proof empty")]
    EmptyTreeMismatch,

    #[error("node (level {}, index {}) is not in the node source", .0.level, .0.index)]
    MissingNode(NodeId),
    #[error("node (level {}, index {}) cannot be appended: the next one at that level is index {expected}", .node.level, .node.index)]
    NodeOutOfOrder { node: NodeId, expected: u64 },
    #[error("node source answered {got} hashes for {expected} requested")]
    NodeCount { expected: usize, got: usize },
    #[error("a compact range of tree size {size} has {expected} hashes, got {got}")]
    CompactRangeShape {
        size: u64,
        expected: usize,
        got: usize,
    },

    #[error("invalid key name {name:?}: {reason}")]
    KeyName { name: String, reason: &'static str },
    #[error("invalid verifier key: {reason}")]
    VerifierKey { reason: &'static str },
    #[error("invalid signing key: {reason}")]
    SigningKey { reason: &'static str },
    #[error("malformed signed note: {reason}")]
    MalformedNote { reason: &'static str },
    #[error("signature by known key {key} does not verify")]
    BadSignature { key: String },
    #[error("note carries two signatures by known key {key}")]
    DuplicateSignature { key: String },
    #[error("note is not signed by any known key")]
    NoKnownSignature,

    #[error("malformed checkpoint: {reason}")]
    MalformedCheckpoint { reason: String },
    #[error("checkpoint origin is {got:?}, expected {expected:?}")]
    OriginMismatch { expected: String, got: String },
    #[error("malformed receipt: {reason}")]
    MalformedReceipt { reason: String },
}
