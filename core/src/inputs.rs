//! The sealed inputs document (`rewarder.inputs.v1`, CALCULUS.md §1.1): parsed once, kept in
//! an aggregated, order-independent form that computes read without touching the raw bytes.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::commit::content_id;
use crate::error::{Code, Error};
use crate::service::Overlap;

/// Upper bounds a node may put on a document (CALCULUS.md §1.1, `limit_exceeded`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most actors accepted in one document.
    pub actors_max: usize,
    /// Most events accepted in one document.
    pub events_max: usize,
}

impl Limits {
    /// No bound beyond what the format itself allows.
    pub const UNBOUNDED: Limits = Limits { actors_max: usize::MAX, events_max: usize::MAX };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::UNBOUNDED
    }
}

/// Units of one kind summed over an actor's events (`U[a][k]`, CALCULUS.md §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Index into [`Inputs::kinds`].
    pub kind: u16,
    /// Sum of the units; u128 because many events of up to 2^53−1 units each can exceed u64.
    pub units: u128,
}

/// A parsed, validated inputs document.
///
/// Actors are held sorted by id (byte order), each with its usage summed per kind (ascending
/// kind index): the form no longer depends on the order of `actors` or `events` in the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inputs {
    pub(crate) cid: String,
    pub(crate) epoch: String,
    pub(crate) pool_minor: u64,
    pub(crate) kinds: Vec<String>,
    /// All actor ids, sorted, concatenated; `actor_ends[i]` is where actor `i` ends.
    pub(crate) actor_bytes: String,
    pub(crate) actor_ends: Vec<u32>,
    /// `usage[usage_ends[i-1]..usage_ends[i]]` is actor `i`'s usage.
    pub(crate) usage: Vec<Usage>,
    pub(crate) usage_ends: Vec<u32>,
    pub(crate) event_count: usize,
}

impl Inputs {
    /// `"b3:" + hex(BLAKE3(raw))`: the content id of the exact bytes parsed.
    pub fn cid(&self) -> &str {
        &self.cid
    }

    /// The epoch label.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// The epoch's pool `P`.
    pub fn pool_minor(&self) -> u64 {
        self.pool_minor
    }

    /// The kinds, in document order (usage refers to them by index).
    pub fn kinds(&self) -> &[String] {
        &self.kinds
    }

    /// Number of actors.
    pub fn actor_count(&self) -> usize {
        self.actor_ends.len()
    }

    /// Number of events in the document.
    pub fn event_count(&self) -> usize {
        self.event_count
    }

    /// Actor `i` in ascending byte order of ids.
    ///
    /// # Panics
    /// If `i >= actor_count()` (caller misuse).
    pub fn actor(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.actor_ends[i - 1] as usize };
        &self.actor_bytes[start..self.actor_ends[i] as usize]
    }

    /// Whether any actor id holds byte `a` or byte `b`: one pass over every id's bytes, in
    /// blocks whose test the compiler vectorizes.
    pub(crate) fn actor_ids_contain(&self, a: u8, b: u8) -> bool {
        self.actor_bytes
            .as_bytes()
            .chunks(64)
            .any(|block| block.iter().fold(0u8, |hit, &c| hit | u8::from(c == a) | u8::from(c == b)) != 0)
    }

    /// Actor `i`'s usage per kind, ascending by kind index, no kind twice.
    ///
    /// # Panics
    /// If `i >= actor_count()` (caller misuse).
    pub fn usage(&self, i: usize) -> &[Usage] {
        let start = if i == 0 { 0 } else { self.usage_ends[i - 1] as usize };
        &self.usage[start..self.usage_ends[i] as usize]
    }

    /// The index of an actor id, if present (binary search over the sorted ids).
    pub fn actor_index(&self, actor: &str) -> Option<usize> {
        let (mut lo, mut hi) = (0, self.actor_count());
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.actor(mid).as_bytes().cmp(actor.as_bytes()) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    /// Parses and validates an inputs document (CALCULUS.md §1.1, §1.3).
    pub fn parse(raw: &[u8], limits: &Limits) -> Result<Inputs, Error> {
        crate::inputs_parse::parse(raw, limits)
    }

    /// [`Inputs::parse`] with the content id hashed by `overlap`'s side (the host's second
    /// thread, where it has one) while the calling thread parses: the same result, in the
    /// time of the longer of the two rather than their sum.
    pub fn parse_overlapped(raw: &[u8], limits: &Limits, overlap: &dyn Overlap) -> Result<Inputs, Error> {
        Inputs::parse_beside(raw, limits, None, overlap, &mut |_| {})
    }

    /// [`Inputs::parse_overlapped`] whose side then runs `beside` with the content id (a node
    /// writes the raw document under it there), unless the parse has already failed by then:
    /// a document refused early (garbage, or the wrong schema) costs no write. `cid` when the
    /// caller has hashed the bytes already, which are then not hashed again.
    pub(crate) fn parse_beside(
        raw: &[u8],
        limits: &Limits,
        cid: Option<String>,
        overlap: &dyn Overlap,
        beside: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Inputs, Error> {
        let mut cid = cid;
        let mut parsed = None;
        let refused = AtomicBool::new(false);
        overlap.both(
            &mut || {
                let cid = cid.get_or_insert_with(|| content_id(raw));
                if !refused.load(Ordering::Relaxed) {
                    beside(cid);
                }
            },
            &mut || {
                let result = crate::inputs_parse::parse_unhashed(raw, limits);
                refused.store(result.is_err(), Ordering::Relaxed);
                parsed = Some(result);
            },
        );
        match (parsed, cid) {
            (Some(parsed), Some(cid)) => {
                let mut inputs = parsed?;
                inputs.cid = cid;
                Ok(inputs)
            }
            _ => Err(Error::new(Code::Internal, "the parse or the hash did not run")),
        }
    }

    /// [`Inputs::parse`] of bytes whose content id the caller has just computed (a node
    /// hashes an upload first when it may already hold it): the bytes are hashed once.
    pub(crate) fn parse_with_cid(raw: &[u8], limits: &Limits, cid: String) -> Result<Inputs, Error> {
        let mut inputs = crate::inputs_parse::parse_unhashed(raw, limits)?;
        inputs.cid = cid;
        Ok(inputs)
    }
}
