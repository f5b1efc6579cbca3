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
    let mut hash = [0u8; 32];
    LeafHasher::new().hash([(actor, amount)], |h| hash = h);
    hash
}

/// The leaves of `(actor, amount)` pairs, in the order given.
pub fn leaves<'a>(pairs: impl IntoIterator<Item = (&'a str, u64)>) -> Vec<[u8; 32]> {
    let pairs = pairs.into_iter();
    let mut out = Vec::with_capacity(pairs.size_hint().0);
    LeafHasher::new().hash(pairs, |h| out.push(h));
    out
}

/// Blocks of the longest leaf input: `2 + 128 + 8` bytes.
const LEAF_BLOCKS_MAX: usize = (2 + ACTOR_BYTES_MAX + 8).div_ceil(64);

/// Bytes of the longest leaf input, zero-padded to whole blocks.
const LEAF_INPUT_BYTES_MAX: usize = LEAF_BLOCKS_MAX * 64;

// `LeafBatch::flush` hashes the blocks before the last one in passes of one and of two blocks.
const _: () = assert!(LEAF_BLOCKS_MAX == 3);

/// Leaves hashed side by side: the widest SIMD degree of BLAKE3's `hash_many` (AVX-512).
const LEAF_BATCH: usize = 16;

/// Hashes leaves with the platform's BLAKE3 compressor and `K_leaf`.
///
/// A leaf of a valid id is 11–138 bytes: one BLAKE3 chunk of at most three blocks, compressed
/// here block by block rather than through the general hasher. The blocks before the last
/// one are full, so those of up to [`LEAF_BATCH`] leaves go through `hash_many` together, one
/// SIMD lane per leaf; only the last block, partial, is compressed per leaf (one compression of
/// three alone for a 128-byte id). The tests `direct_leaves_equal_keyed_hash` and
/// `batched_leaves_equal_one_at_a_time` pin it to `keyed_hash`.
struct LeafHasher {
    platform: Platform,
    key: [u8; 32],
    key_words: [u32; 8],
}

impl LeafHasher {
    fn new() -> LeafHasher {
        let key = leaf_key();
        LeafHasher { platform: Platform::detect(), key, key_words: key_words(&key) }
    }

    /// Hashes every pair, handing the leaves to `out` in the order of `pairs`.
    fn hash<'a>(&self, pairs: impl IntoIterator<Item = (&'a str, u64)>, mut out: impl FnMut([u8; 32])) {
        let mut batch = LeafBatch::new();
        for (actor, amount) in pairs {
            if actor.len() > ACTOR_BYTES_MAX {
                batch.flush(self, &mut out);
                out(self.long(actor.as_bytes(), amount));
                continue;
            }
            batch.push(actor.as_bytes(), amount);
            if batch.len == LEAF_BATCH {
                batch.flush(self, &mut out);
            }
        }
        batch.flush(self, &mut out);
    }

    /// The leaf of an id longer than any payee's (CALCULUS.md §1.1): every byte hashed, so
    /// that no id aliases its prefix.
    fn long(&self, id: &[u8], amount: u64) -> [u8; 32] {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        h.update(&u16::try_from(id.len()).unwrap_or(u16::MAX).to_be_bytes());
        h.update(id);
        h.update(&amount.to_be_bytes());
        *h.finalize().as_bytes()
    }

    /// Into `cvs`, the chaining values of the batch's inputs that have exactly `N / 64` blocks
    /// before their last one, after those blocks: all of them in one `hash_many`.
    fn prefixes<const N: usize>(&self, batch: &LeafBatch, cvs: &mut [[u32; 8]; LEAF_BATCH]) {
        const { assert!(N.is_multiple_of(64) && N > 0 && N < LEAF_INPUT_BYTES_MAX) };
        fn prefix<const N: usize>(input: &[u8; LEAF_INPUT_BYTES_MAX]) -> &[u8; N] {
            input.first_chunk::<N>().expect("N < LEAF_INPUT_BYTES_MAX, checked at compile time")
        }
        let lanes = batch.lanes(N / 64);
        if lanes.is_empty() {
            return;
        }
        let mut inputs = [prefix::<N>(&batch.inputs[0]); LEAF_BATCH];
        for (input, &i) in inputs.iter_mut().zip(lanes) {
            *input = prefix(&batch.inputs[i]);
        }
        let mut chained = [[0u8; 32]; LEAF_BATCH];
        self.platform.hash_many(
            &inputs[..lanes.len()],
            &self.key_words,
            0,
            blake3::IncrementCounter::No,
            KEYED_HASH,
            CHUNK_START,
            0,
            chained[..lanes.len()].as_flattened_mut(),
        );
        for (&i, cv) in lanes.iter().zip(&chained) {
            cvs[i] = blake3::platform::words_from_le_bytes_32(cv);
        }
    }

    /// The leaf of an input of `len` bytes whose blocks before the last chained to `cv`.
    fn last_block(&self, mut cv: [u32; 8], input: &[u8; LEAF_INPUT_BYTES_MAX], len: usize) -> [u8; 32] {
        let last = (len - 1) / 64;
        let mut flags = KEYED_HASH | CHUNK_END | ROOT;
        if last == 0 {
            flags |= CHUNK_START;
        }
        let (blocks, _) = input.as_chunks::<64>();
        // The last block holds 1–64 bytes: `len - 64 * last` fits a u8.
        self.platform.compress_in_place(&mut cv, &blocks[last], (len - 64 * last) as u8, 0, flags);
        blake3::platform::le_bytes_from_words_32(&cv)
    }
}

/// Up to [`LEAF_BATCH`] leaf inputs of ids of at most [`ACTOR_BYTES_MAX`] bytes, waiting to be
/// hashed together.
struct LeafBatch {
    /// `u16_be(len) ‖ id ‖ u64_be(amount)`, zero-padded to the end of its last block.
    inputs: [[u8; LEAF_INPUT_BYTES_MAX]; LEAF_BATCH],
    /// The unpadded length of each input.
    lens: [usize; LEAF_BATCH],
    /// Inputs waiting.
    len: usize,
    /// `lanes[b - 1][..lanes_len[b - 1]]`: the inputs with `b` blocks before their last one,
    /// noted as they come so that a flush does not look for them.
    lanes: [[usize; LEAF_BATCH]; LEAF_BLOCKS_MAX - 1],
    lanes_len: [usize; LEAF_BLOCKS_MAX - 1],
}

impl LeafBatch {
    fn new() -> LeafBatch {
        LeafBatch {
            inputs: [[0; LEAF_INPUT_BYTES_MAX]; LEAF_BATCH],
            lens: [0; LEAF_BATCH],
            len: 0,
            lanes: [[0; LEAF_BATCH]; LEAF_BLOCKS_MAX - 1],
            lanes_len: [0; LEAF_BLOCKS_MAX - 1],
        }
    }

    /// The inputs with `blocks` (1 or 2) blocks before their last one.
    fn lanes(&self, blocks: usize) -> &[usize] {
        &self.lanes[blocks - 1][..self.lanes_len[blocks - 1]]
    }

    /// Adds the input of `id` (at most [`ACTOR_BYTES_MAX`] bytes) and `amount`; the caller
    /// flushes a full batch first.
    fn push(&mut self, id: &[u8], amount: u64) {
        let (input, n) = (&mut self.inputs[self.len], id.len());
        let len = 2 + n + 8;
        // n ≤ ACTOR_BYTES_MAX < 2^16.
        input[..2].copy_from_slice(&(n as u16).to_be_bytes());
        input[2..2 + n].copy_from_slice(id);
        input[2 + n..len].copy_from_slice(&amount.to_be_bytes());
        // A slot is reused from batch to batch: the padding must be zeros again.
        input[len..len.next_multiple_of(64)].fill(0);
        self.lens[self.len] = len;
        let before = (len - 1) / 64;
        if before > 0 {
            self.lanes[before - 1][self.lanes_len[before - 1]] = self.len;
            self.lanes_len[before - 1] += 1;
        }
        self.len += 1;
    }

    /// Hashes the waiting inputs into `out`, in order, and empties the batch.
    fn flush(&mut self, hasher: &LeafHasher, out: &mut impl FnMut([u8; 32])) {
        let mut cvs = [hasher.key_words; LEAF_BATCH];
        hasher.prefixes::<64>(self, &mut cvs);
        hasher.prefixes::<128>(self, &mut cvs);
        let n = self.len;
        for ((&cv, input), &len) in cvs[..n].iter().zip(&self.inputs[..n]).zip(&self.lens[..n]) {
            out(hasher.last_block(cv, input, len));
        }
        self.len = 0;
        self.lanes_len = [0; LEAF_BLOCKS_MAX - 1];
    }
}

/// `BLAKE3_keyed(K_node, left ‖ right)`.
pub fn node(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(left);
    block[32..].copy_from_slice(right);
    *blake3::keyed_hash(&node_key(), &block).as_bytes()
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
    fn batched_leaves_equal_one_at_a_time() {
        // Lengths mixed within and across batches (one, two and three blocks, and ids too long
        // for a payee between them), so that every pass of a batch sees some lanes and not others.
        let key = leaf_key();
        let ids: Vec<String> = (0..100)
            .map(|i| {
                let n = [1, 54, 55, 118, 119, 128, 129, 77][i % 8] + (i * 7) % 3 - 1;
                (0..n).map(|j| char::from(b'!' + ((i + j) % 94) as u8)).collect()
            })
            .collect();
        let pairs: Vec<(&str, u64)> =
            ids.iter().enumerate().map(|(i, id)| (id.as_str(), i as u64 * 977)).collect();
        let expected: Vec<[u8; 32]> = pairs
            .iter()
            .map(|(id, amount)| {
                let mut input = (id.len() as u16).to_be_bytes().to_vec();
                input.extend_from_slice(id.as_bytes());
                input.extend_from_slice(&amount.to_be_bytes());
                *blake3::keyed_hash(&key, &input).as_bytes()
            })
            .collect();
        for n in [0, 1, 15, 16, 17, 33, 100] {
            assert_eq!(leaves(pairs[..n].iter().copied()), expected[..n], "{n} leaves");
        }
    }

    #[test]
    fn no_payees_is_the_empty_root() {
        assert_eq!(root(&[]), *blake3::hash(b"rewarder.merkle.empty.v1").as_bytes());
    }
}
