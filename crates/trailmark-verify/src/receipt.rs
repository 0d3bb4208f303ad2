//! Receipts checked offline: a C2SP tlog-proof whose `extra` is the entry's
//! envelope, so the receipt alone recomputes the leaf.

use trailmark_core::Envelope;
use trailmark_log::{CosignatureKey, Receipt, VerifierKey, leaf_hash};

/// What a genuine receipt proves.
#[derive(Clone, Debug)]
pub struct ReceiptFacts {
    pub envelope: Envelope,
    /// The size of the checkpoint the entry is proven against.
    pub tree_size: u64,
    /// The key that signed that checkpoint.
    pub key_name: String,
}

/// Checks a receipt against the log keys the caller trusts (the one whose
/// name is the checkpoint's origin is used): the checkpoint's signature, the
/// inclusion proof of the envelope's leaf, and that the envelope is the
/// entry at the proven index of that log's tenant.
pub fn verify_receipt(bytes: &[u8], keys: &[VerifierKey]) -> Result<ReceiptFacts, String> {
    verify_witnessed_receipt(bytes, keys, &[], 0)
}

/// [`verify_receipt`], and the receipt's checkpoint must carry valid
/// cosignatures by at least `required` of `witnesses`.
pub fn verify_witnessed_receipt(
    bytes: &[u8],
    keys: &[VerifierKey],
    witnesses: &[CosignatureKey],
    required: usize,
) -> Result<ReceiptFacts, String> {
    let receipt = Receipt::parse(bytes).map_err(|e| e.to_string())?;
    if required > 0 {
        let valid = witnesses
            .iter()
            .filter(|w| w.verify(receipt.checkpoint()).is_ok())
            .count();
        if valid < required {
            return Err(format!(
                "the receipt's checkpoint carries {valid} valid cosignatures of the given witnesses, {required} are required"
            ));
        }
    }
    let envelope_bytes = receipt
        .extra()
        .ok_or("the receipt carries no envelope (its extra line is missing)")?;
    let envelope = Envelope::from_leaf_bytes(envelope_bytes)
        .map_err(|e| format!("the receipt's envelope: {e}"))?;
    let leaf = leaf_hash(envelope_bytes);
    let mut last = String::from("no verifier key was given");
    for key in keys {
        match receipt.verify(&leaf, key) {
            Ok(checkpoint) => {
                if envelope.seq.get() != receipt.index().get() {
                    return Err(format!(
                        "the envelope says seq {} but the proof is for index {}",
                        envelope.seq,
                        receipt.index().get()
                    ));
                }
                let name = key.name().as_str();
                if name.rsplit('/').next() != Some(envelope.tenant.as_str()) {
                    return Err(format!(
                        "the envelope belongs to tenant {} but the checkpoint is {name}'s",
                        envelope.tenant
                    ));
                }
                return Ok(ReceiptFacts {
                    envelope,
                    tree_size: checkpoint.size().get(),
                    key_name: name.to_owned(),
                });
            }
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}
