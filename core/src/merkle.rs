//! The allocations Merkle tree of CALCULUS.md §4: keyed-BLAKE3 leaves and 64-byte interior
//! nodes, proofs and their verification.

use blake3::platform::Platform;

/// One step of a proof: the sibling's hash and the side it sits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProofStep {
    /// `true` when the sibling is on the left (`"L"`).
    pub left: bool,
    /// The sibling's hash.
    pub hash: [u8; 32],
}

impl ProofStep {
    /// `"L"` or `"R"`.
    pub fn side(&self) -> &'static str {
        if self.left { "L" } else { "R" }
    }
}

/// The longest actor id (CALCULUS.md §1.1).
const ACTOR_BYTES_MAX: usize = 128;

fn leaf_key() -> [u8; 32] {
    *blake3::hash(b"rewarder.merkle.leaf.v1").as_bytes()
}

fn node_key() -> [u8; 32] {
    *blake3::hash(b"rewarder.merkle.node.v1").as_bytes()
}

/// The root of a tree with no leaves.
pub fn empty_root() -> [u8; 32] {
    *blake3::hash(b"rewarder.merkle.empty.v1").as_bytes()
}

/// `BLAKE3_keyed(K_leaf, u16_be(len(actor)) ‖ actor ‖ u64_be(amount))`.
pub fn leaf(actor: &str, amount: u64) -> [u8; 32] {
    leaf_with(&leaf_key(), actor, amount)
}

fn leaf_with(key: &[u8; 32], actor: &str, amount: u64) -> [u8; 32] {
    leaf_in(Platform::detect(), &key_words(key), key, actor, amount)
}

/// One leaf. A leaf of a valid id is 11–138 bytes: one BLAKE3 chunk of at most three blocks,
/// compressed here block by block, so that ten thousand leaves skip ten thousand trips through
/// the general hasher (the test `direct_leaves_equal_keyed_hash` pins it to `keyed_hash`).
fn leaf_in(platform: Platform, key_words: &[u32; 8], key: &[u8; 32], actor: &str, amount: u64) -> [u8; 32] {
    let id = actor.as_bytes();
    if id.len() > ACTOR_BYTES_MAX {
        // Never a payee (CALCULUS.md §1.1), but hash every byte so no id aliases its prefix.
        let mut h = blake3::Hasher::new_keyed(key);
        h.update(&u16::try_from(id.len()).unwrap_or(u16::MAX).to_be_bytes());
        h.update(id);
        h.update(&amount.to_be_bytes());
        return *h.finalize().as_bytes();
    }
    let mut buf = [0u8; LEAF_BLOCKS_MAX * 64];
    let n = id.len();
    buf[..2].copy_from_slice(&(n as u16).to_be_bytes());
    buf[2..2 + n].copy_from_slice(id);
    buf[2 + n..2 + n + 8].copy_from_slice(&amount.to_be_bytes());
    let len = 2 + n + 8;
    let (blocks, _) = buf.as_chunks::<64>();
    let last = (len - 1) / 64;
    let mut cv = *key_words;
    for (i, block) in blocks[..=last].iter().enumerate() {
        let mut flags = KEYED_HASH;
        if i == 0 {
            flags |= CHUNK_START;
        }
        let block_len = if i == last {
            flags |= CHUNK_END | ROOT;
            len - 64 * last
        } else {
            64
        };
        // block_len ≤ 64 by construction.
        platform.compress_in_place(&mut cv, block, block_len as u8, 0, flags);
    }
    blake3::platform::le_bytes_from_words_32(&cv)
}

/// Blocks of the longest leaf input: `2 + 128 + 8` bytes.
const LEAF_BLOCKS_MAX: usize = (2 + ACTOR_BYTES_MAX + 8).div_ceil(64);

/// `BLAKE3_keyed(K_node, left ‖ right)`.
pub fn node(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(left);
    block[32..].copy_from_slice(right);
    *blake3::keyed_hash(&node_key(), &block).as_bytes()
}

/// The leaves of `(actor, amount)` pairs, in the order given.
pub fn leaves<'a>(pairs: impl IntoIterator<Item = (&'a str, u64)>) -> Vec<[u8; 32]> {
    let key = leaf_key();
    let (platform, words) = (Platform::detect(), key_words(&key));
    pairs.into_iter().map(|(a, x)| leaf_in(platform, &words, &key, a, x)).collect()
}

/// Flags of a single-block keyed BLAKE3 hash that is its own root (BLAKE3 spec §2.1).
const CHUNK_START: u8 = 1;
const CHUNK_END: u8 = 2;
const ROOT: u8 = 8;
const KEYED_HASH: u8 = 16;

/// Hashes one level into the next: pairs left to right, an unpaired last node moves up.
///
/// Every interior node is exactly one 64-byte BLAKE3 block, so a whole level goes through
/// BLAKE3's multi-input SIMD compressor (`platform::hash_many`) at once; the test
/// `batched_levels_equal_one_at_a_time` pins it to [`node`].
fn next_level(platform: Platform, key_words: &[u32; 8], level: &[[u8; 32]], out: &mut Vec<[u8; 32]>) {
    let (pairs, _) = level.as_flattened().as_chunks::<64>();
    let inputs: Vec<&[u8; 64]> = pairs.iter().collect();
    out.clear();
    out.resize(pairs.len(), [0u8; 32]);
    platform.hash_many(
        &inputs,
        key_words,
        0,
        blake3::IncrementCounter::No,
        KEYED_HASH | ROOT,
        CHUNK_START,
        CHUNK_END,
        out.as_flattened_mut(),
    );
    if level.len() % 2 == 1 {
        out.push(level[level.len() - 1]);
    }
}

fn key_words(key: &[u8; 32]) -> [u32; 8] {
    let mut w = [0u32; 8];
    for (i, c) in key.as_chunks::<4>().0.iter().enumerate() {
        w[i] = u32::from_le_bytes(*c);
    }
    w
}

/// The root over `leaves` (the empty root when there are none).
pub fn root(leaves: &[[u8; 32]]) -> [u8; 32] {
    if leaves.is_empty() {
        return empty_root();
    }
    let (platform, words) = (Platform::detect(), key_words(&node_key()));
    let mut level = leaves.to_vec();
    let mut next = Vec::with_capacity(level.len().div_ceil(2));
    while level.len() > 1 {
        next_level(platform, &words, &level, &mut next);
        std::mem::swap(&mut level, &mut next);
    }
    level[0]
}

/// The proof for leaf `index`, bottom-up; `None` when `index` is out of range.
pub fn proof(leaves: &[[u8; 32]], index: usize) -> Option<Vec<ProofStep>> {
    if index >= leaves.len() {
        return None;
    }
    let (platform, words) = (Platform::detect(), key_words(&node_key()));
    let mut steps = Vec::new();
    let mut level = leaves.to_vec();
    let mut next = Vec::with_capacity(level.len().div_ceil(2));
    let mut i = index;
    while level.len() > 1 {
        let sibling = i ^ 1;
        if sibling < level.len() {
            steps.push(ProofStep { left: sibling < i, hash: level[sibling] });
        }
        next_level(platform, &words, &level, &mut next);
        std::mem::swap(&mut level, &mut next);
        i /= 2;
    }
    Some(steps)
}

/// Folds a proof from the leaf of `(actor, amount)` and compares with `root`; an id that no
/// payee can have (outside 1..=128 bytes) never verifies.
pub fn verify(root: &[u8; 32], actor: &str, amount: u64, proof: &[ProofStep]) -> bool {
    if !(1..=ACTOR_BYTES_MAX).contains(&actor.len()) {
        return false;
    }
    let mut h = leaf(actor, amount);
    for step in proof {
        h = if step.left { node(&step.hash, &h) } else { node(&h, &step.hash) };
    }
    &h == root
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_root(leaves: &[[u8; 32]]) -> [u8; 32] {
        let mut level = leaves.to_vec();
        while level.len() > 1 {
            level = level.chunks(2).map(|p| if p.len() == 2 { node(&p[0], &p[1]) } else { p[0] }).collect();
        }
        level[0]
    }

    fn sample(n: usize) -> Vec<[u8; 32]> {
        leaves((0..n).map(|i| (if i % 2 == 0 { "acct:even" } else { "acct:odd" }, i as u64)))
    }

    #[test]
    fn batched_levels_equal_one_at_a_time() {
        for n in [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 33, 100, 257] {
            assert_eq!(root(&sample(n)), naive_root(&sample(n)), "n = {n}");
        }
    }

    #[test]
    fn every_proof_verifies_and_fails_when_tampered() {
        for n in [1, 2, 3, 5, 8, 13] {
            let ls: Vec<[u8; 32]> = leaves((0..n).map(|i| ("acct:x", i as u64 + 1)));
            let r = root(&ls);
            for i in 0..n {
                let p = proof(&ls, i).unwrap();
                assert!(verify(&r, "acct:x", i as u64 + 1, &p));
                assert!(!verify(&r, "acct:x", i as u64 + 2, &p));
                assert!(!verify(&r, "acct:y", i as u64 + 1, &p));
                for s in 0..p.len() {
                    let mut bad = p.clone();
                    bad[s].hash[0] ^= 1;
                    assert!(!verify(&r, "acct:x", i as u64 + 1, &bad));
                }
            }
            assert!(proof(&ls, n).is_none());
        }
    }

    #[test]
    fn direct_leaves_equal_keyed_hash() {
        let key = leaf_key();
        for n in (0..=ACTOR_BYTES_MAX + 3).chain([300, 1000, 2000]) {
            let id: String = (0..n).map(|i| char::from(b'!' + (i % 94) as u8)).collect();
            for amount in [0, 1, u64::MAX] {
                let mut input = (id.len() as u16).to_be_bytes().to_vec();
                input.extend_from_slice(id.as_bytes());
                input.extend_from_slice(&amount.to_be_bytes());
                let expected = *blake3::keyed_hash(&key, &input).as_bytes();
                assert_eq!(leaf(&id, amount), expected, "id of {n} bytes");
                assert_eq!(leaves([(id.as_str(), amount)]), vec![expected]);
            }
        }
    }

    #[test]
    fn no_payees_is_the_empty_root() {
        assert_eq!(root(&[]), *blake3::hash(b"rewarder.merkle.empty.v1").as_bytes());
    }
}
