//! Content ids and framed BLAKE3 commitments (CALCULUS.md §1, §4): run ids, intent keys.

/// `"b3:" + lowercase hex` of a 32-byte digest.
pub fn b3_hex(digest: &[u8; 32]) -> String {
    let mut s = String::with_capacity(67);
    s.push_str("b3:");
    s.push_str(&hex::encode(digest));
    s
}

/// The content id of a sealed document: `"b3:" + hex(BLAKE3(bytes))`.
pub fn content_id(bytes: &[u8]) -> String {
    b3_hex(blake3::hash(bytes).as_bytes())
}

/// BLAKE3 of `frame(fields…)`: each field as u32 big-endian length ‖ bytes.
pub fn framed_hash(fields: &[&[u8]]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    for f in fields {
        // Fields are ids and decimal strings bounded far below 4 GiB by validation.
        let len = u32::try_from(f.len()).expect("framed field shorter than 4 GiB");
        h.update(&len.to_be_bytes());
        h.update(f);
    }
    *h.finalize().as_bytes()
}

/// `run_id = "b3:" + hex(BLAKE3(frame("rewarder.run.v1", tenant, epoch, inputs_cid, policy_hash)))`.
pub fn run_id(tenant: &str, epoch: &str, inputs_cid: &str, policy_hash: &str) -> String {
    b3_hex(&framed_hash(&[
        b"rewarder.run.v1",
        tenant.as_bytes(),
        epoch.as_bytes(),
        inputs_cid.as_bytes(),
        policy_hash.as_bytes(),
    ]))
}

/// The ledger idempotency key of paying `actor` in `epoch` for `tenant` (not of the amount).
pub fn intent_key(tenant: &str, epoch: &str, actor: &str) -> String {
    b3_hex(&framed_hash(&[b"rewarder.intent.v1", tenant.as_bytes(), epoch.as_bytes(), actor.as_bytes()]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_id_is_prefixed_lowercase_hex_of_blake3() {
        let id = content_id(b"");
        assert_eq!(id, "b3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262");
    }

    #[test]
    fn frame_separates_fields_by_length() {
        assert_ne!(framed_hash(&[b"ab", b"c"]), framed_hash(&[b"a", b"bc"]));
    }
}
