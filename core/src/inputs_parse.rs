//! Parsing and validation of the inputs document (CALCULUS.md §1.1, §1.3) into [`Inputs`].
//!
//! One pass of [`Scanner`] over the bytes. The `events` array, nearly all of a large document,
//! has hand-rolled fast paths for `[id,actor,kind,units]` tuples of plain integers (compact,
//! then with whitespace) and falls back to the general scanner for anything else. Events land
//! in flat vectors, nothing is allocated per event. Fields may come in any order, so the
//! events are checked against `actors` and `kinds` after the scan, in a tight loop of its own
//! (it reads a large table at random; kept short, the loop keeps many reads in flight). The
//! sums go into a dense actor × kind matrix when that is no larger than the document, else a
//! counting sort groups the events by actor first.
//!
//! When several defects are present the first one found is reported: fields in document
//! order; within `events` first what the scan sees (shape, numbers, ranges of ids and units),
//! then the first index out of range, then the first repeated event id.

use std::collections::HashSet;

use crate::commit::content_id;
use crate::error::{Code, Error};
use crate::inputs::{Inputs, Limits, Usage};
use crate::json::{self, Num, Scanner, load8};

/// The `schema` value of an inputs document.
const SCHEMA: &str = "rewarder.inputs.v1";
/// Longest epoch label, in characters.
const EPOCH_LEN_MAX: usize = 128;
/// Most kinds in one document.
const KINDS_MAX: usize = 256;
/// Longest kind name, in characters.
const KIND_LEN_MAX: usize = 64;
/// Longest actor id, in bytes.
const ACTOR_LEN_MAX: usize = 128;
/// Largest event id and units: 2^53 − 1, exact in every JSON implementation.
pub(crate) const INT_MAX: u64 = (1 << 53) - 1;
/// Most actors any document may hold: indices and ends are `u32`, and `u32::MAX` stands for
/// "out of range" while scanning events.
const ACTORS_HARD_MAX: usize = u32::MAX as usize - 1;
/// Most events any document may hold: usage offsets are `u32`.
const EVENTS_HARD_MAX: usize = u32::MAX as usize;
/// Containers open around an element of an event: the document, `events`, the event.
const EVENT_ELEMENT_DEPTH: usize = 3;
/// The dense matrix of sums is used when it takes no more bytes than this or the document.
const DENSE_BYTES_MIN: usize = 1 << 16;

/// Bits of a packed event that hold the units; the kind index sits above them.
const UNITS_BITS: u32 = 53;
/// Where a kind index that is out of range for every document is clamped to.
const KIND_SATURATED: u64 = 511;

const _: () = assert!(INT_MAX == (1 << UNITS_BITS) - 1);
const _: () = assert!(KIND_SATURATED >= KINDS_MAX as u64);
const _: () = assert!(KIND_SATURATED < 1 << (64 - UNITS_BITS));
const _: () = assert!(KINDS_MAX.is_power_of_two() && KINDS_MAX <= u16::MAX as usize + 1);

/// Parses and validates an inputs document.
pub(crate) fn parse(raw: &[u8], limits: &Limits) -> Result<Inputs, Error> {
    let mut inputs = parse_unhashed(raw, limits)?;
    inputs.cid = content_id(raw);
    Ok(inputs)
}

/// Parses and validates an inputs document, leaving its content id empty for the caller.
pub(crate) fn parse_unhashed(raw: &[u8], limits: &Limits) -> Result<Inputs, Error> {
    json::confirm(raw, parse_document(raw, limits))
}

fn parse_document(src: &[u8], limits: &Limits) -> Result<Inputs, Error> {
    let mut sc = Scanner::new(src);
    sc.skip_ws();
    if sc.peek() != Some(b'{') {
        return Err(Error::new(Code::Schema, "the document is not a JSON object"));
    }
    let mut doc = Doc { doc_len: src.len(), ..Doc::default() };
    sc.object(|sc, key| doc.member(sc, &key, limits))?;
    sc.end()?;
    doc.finish()
}

/// The fields of the document, in the order missing ones are reported.
#[derive(Debug, Clone, Copy)]
enum Field {
    Schema,
    Epoch,
    PoolMinor,
    Kinds,
    Actors,
    Events,
}

const FIELDS: [(&str, Field); 6] = [
    ("schema", Field::Schema),
    ("epoch", Field::Epoch),
    ("pool_minor", Field::PoolMinor),
    ("kinds", Field::Kinds),
    ("actors", Field::Actors),
    ("events", Field::Events),
];

impl Field {
    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// What the scan has gathered so far.
#[derive(Default)]
struct Doc {
    /// One bit per [`Field`] seen.
    seen: u8,
    doc_len: usize,
    epoch: String,
    pool_minor: u64,
    kinds: Vec<String>,
    actors: Option<Actors>,
    events: Events,
    /// The events summed while scanning, when `actors` and `kinds` came before them.
    summed: Option<Summed>,
}

impl Doc {
    fn member(&mut self, sc: &mut Scanner<'_>, key: &str, limits: &Limits) -> Result<(), Error> {
        let Some(&(name, field)) = FIELDS.iter().find(|(name, _)| *name == key) else {
            return Err(Error::field(Code::Schema, shorten(key), "unknown field"));
        };
        if self.seen & field.bit() != 0 {
            return Err(Error::field(Code::Schema, name, "field given twice"));
        }
        self.seen |= field.bit();
        match field {
            Field::Schema => {
                if sc.peek() != Some(b'"') || sc.string()? != SCHEMA {
                    return Err(Error::field(Code::Schema, name, "expected \"rewarder.inputs.v1\""));
                }
            }
            Field::Epoch => self.epoch = label(sc, name, EPOCH_LEN_MAX, Code::InvalidEpoch)?,
            Field::PoolMinor => self.pool_minor = amount(sc, name)?,
            Field::Kinds => self.kinds = kinds(sc)?,
            Field::Actors => self.actors = Some(actors(sc, limits)?),
            Field::Events => {
                if let Some(summed) = self.sum_events(sc, limits) {
                    self.summed = Some(summed);
                } else {
                    events(sc, &mut self.events, limits)?;
                }
            }
        }
        Ok(())
    }

    /// The fast path of `events`: when `actors` and `kinds` are known, valid compact events
    /// are summed into the dense matrix as they are scanned, nothing stored per event but the
    /// id. `None` (cursor unmoved) for anything unusual — an event that is not plain integers,
    /// an index out of range, a sum beyond `u64`, a bound reached, a matrix larger than the
    /// document — which the general path then scans again and reports in the order of the spec.
    fn sum_events(&self, sc: &mut Scanner<'_>, limits: &Limits) -> Option<Summed> {
        let actors = self.actors.as_ref()?;
        let (actor_count, kind_count) = (actors.rank.len(), self.kinds.len());
        let cell_count = actor_count.checked_mul(kind_count)?;
        if kind_count == 0 || cell_count.saturating_mul(size_of::<u64>()) > self.doc_len.max(DENSE_BYTES_MIN)
        {
            return None;
        }
        let max = limits.events_max.min(EVENTS_HARD_MAX);
        let (summed, end) = summed_events(sc.bytes(), sc.pos(), kind_count, cell_count, max)?;
        sc.set_pos(end);
        Some(summed)
    }

    fn finish(self) -> Result<Inputs, Error> {
        for (name, field) in FIELDS {
            if self.seen & field.bit() == 0 {
                return Err(Error::field(Code::Schema, name, "required field missing"));
            }
        }
        let Some(actors) = self.actors else {
            return Err(Error::field(Code::Schema, "actors", "required field missing"));
        };
        let (usage, usage_ends, event_count) = match self.summed {
            Some(summed) => {
                if let Some(i) = first_repeat(&summed.ids) {
                    return Err(Error::at(Code::DuplicateEvent, "events", i, "event id seen twice"));
                }
                let (usage, ends) =
                    usage_from_doc_cells(&summed.cells, &actors.order, self.kinds.len(), summed.ids.len());
                (usage, ends, summed.ids.len())
            }
            None => {
                let event_count = self.events.ids.len();
                let (usage, ends) = aggregate(self.events, &actors.rank, self.kinds.len(), self.doc_len)?;
                (usage, ends, event_count)
            }
        };
        Ok(Inputs {
            cid: String::new(),
            epoch: self.epoch,
            pool_minor: self.pool_minor,
            kinds: self.kinds,
            actor_bytes: actors.bytes,
            actor_ends: actors.ends,
            usage,
            usage_ends,
            event_count,
        })
    }
}

/// A field name for error details: unknown keys are cut to 64 bytes.
fn shorten(key: &str) -> &str {
    let mut end = key.len().min(64);
    while !key.is_char_boundary(end) {
        end -= 1;
    }
    key.get(..end).unwrap_or_default()
}

/// The `limit_exceeded` error of a bound.
fn limit_exceeded(field: &str, max: usize) -> Error {
    Error::field(Code::LimitExceeded, field, format!("more than {max} {field}"))
        .with_detail("limit", u64::try_from(max).unwrap_or(u64::MAX))
}

/// Reads a label (epoch, policy id): a string of 1..=`len_max` characters of `[A-Za-z0-9._:-]`.
pub(crate) fn label(sc: &mut Scanner<'_>, field: &str, len_max: usize, code: Code) -> Result<String, Error> {
    let bad = || Error::field(code, field, format!("must be 1 to {len_max} characters of [A-Za-z0-9._:-]"));
    if sc.peek() != Some(b'"') {
        return Err(bad());
    }
    let s = sc.string()?;
    let ok = (1..=len_max).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    if ok { Ok(s.into_owned()) } else { Err(bad()) }
}

/// Reads a decimal-string amount (`invalid_amount` otherwise).
pub(crate) fn amount(sc: &mut Scanner<'_>, field: &str) -> Result<u64, Error> {
    let bad = || {
        Error::field(
            Code::InvalidAmount,
            field,
            "must be a decimal string (0, or digits without a leading zero) of at most 2^64-1",
        )
    };
    if sc.peek() != Some(b'"') {
        return Err(bad());
    }
    parse_amount(&sc.string()?).ok_or_else(bad)
}

/// A canonical decimal amount (CALCULUS.md §1): `"0"` or `[1-9][0-9]*` with a value that fits
/// in a `u64`. The one reading of an amount: documents, results under verification, the FFI
/// and the ledger simulator all use it.
pub fn parse_amount(s: &str) -> Option<u64> {
    match s.as_bytes() {
        [] => None,
        [b'0'] => Some(0),
        [b'0', ..] => None,
        digits => digits.iter().try_fold(0u64, |acc, &d| {
            if !d.is_ascii_digit() {
                return None;
            }
            acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        }),
    }
}

/// 1 to 64 characters of `[a-z0-9_.:-]`.
pub(crate) fn is_kind_name(s: &str) -> bool {
    (1..=KIND_LEN_MAX).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// 1 to 128 bytes, each printable ASCII other than space.
fn is_actor(s: &[u8]) -> bool {
    (1..=ACTOR_LEN_MAX).contains(&s.len()) && s.iter().all(|b| (0x21..=0x7E).contains(b))
}

fn kinds(sc: &mut Scanner<'_>) -> Result<Vec<String>, Error> {
    if sc.peek() != Some(b'[') {
        return Err(Error::field(Code::InvalidKinds, "kinds", "must be an array of kind names"));
    }
    let mut kinds: Vec<String> = Vec::new();
    sc.array(|sc, i| {
        let bad = |msg: &str| Error::at(Code::InvalidKinds, "kinds", i, msg);
        if i >= KINDS_MAX {
            return Err(bad("more than 256 kinds"));
        }
        if sc.peek() != Some(b'"') {
            return Err(bad("a kind must be a string"));
        }
        let kind = sc.string()?;
        if !is_kind_name(&kind) {
            return Err(bad("a kind must be 1 to 64 characters of [a-z0-9_.:-]"));
        }
        if kinds.iter().any(|k| *k == kind) {
            return Err(bad("kind listed twice"));
        }
        kinds.push(kind.into_owned());
        Ok(())
    })?;
    if kinds.is_empty() {
        return Err(Error::field(Code::InvalidKinds, "kinds", "must not be empty"));
    }
    Ok(kinds)
}

/// The actors, sorted by id.
struct Actors {
    bytes: String,
    ends: Vec<u32>,
    /// Document index → position in sorted order.
    rank: Vec<u32>,
    /// Position in sorted order → document index.
    order: Vec<u32>,
}

fn actors(sc: &mut Scanner<'_>, limits: &Limits) -> Result<Actors, Error> {
    if sc.peek() != Some(b'[') {
        return Err(Error::field(Code::InvalidActor, "actors", "must be an array of actor ids"));
    }
    let max = limits.actors_max.min(ACTORS_HARD_MAX);
    let mut bytes: Vec<u8> = Vec::new();
    let mut ends: Vec<u32> = Vec::new();
    sc.array(|sc, i| {
        if i >= max {
            return Err(limit_exceeded("actors", max));
        }
        if sc.peek() != Some(b'"') {
            return Err(Error::at(Code::InvalidActor, "actors", i, "an actor id must be a string"));
        }
        let b = sc.bytes();
        let start = sc.pos() + 1;
        if let Some(end) = plain_string_end(b, start) {
            // Every byte before the quote is printable ASCII other than space, `"` and `\`.
            if !(1..=ACTOR_LEN_MAX).contains(&(end - start)) {
                let msg = "an actor id must be 1 to 128 bytes of printable ASCII without space";
                return Err(Error::at(Code::InvalidActor, "actors", i, msg));
            }
            bytes.extend_from_slice(&b[start..end]);
            sc.set_pos(end + 1);
            let end = u32::try_from(bytes.len()).map_err(|_| limit_exceeded("actors", i))?;
            ends.push(end);
            return Ok(());
        }
        // Not checked for UTF-8: an actor id must be ASCII anyway.
        let actor = sc.string_bytes()?;
        if !is_actor(&actor) {
            let msg = "an actor id must be 1 to 128 bytes of printable ASCII without space";
            return Err(Error::at(Code::InvalidActor, "actors", i, msg));
        }
        bytes.extend_from_slice(&actor);
        let end = u32::try_from(bytes.len()).map_err(|_| limit_exceeded("actors", i))?;
        ends.push(end);
        Ok(())
    })?;
    // Zero padding, so that the sort may read 16 bytes at any id.
    bytes.extend_from_slice(&[0; 16]);
    sort_actors(&bytes, &ends)
}

/// The offset of the `"` that ends a string whose contents start at `i`, when every byte
/// before it is in 0x21..=0x7E and none is `\\`; `None` otherwise (an escape, a space, a
/// control or non-ASCII byte, the end of the input): eight bytes at a time.
#[inline]
fn plain_string_end(b: &[u8], mut i: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = ONES * 0x80;
    // Flags (high bit) the bytes below 0x21, from 0x7F, `"` and `\\`. Only the lowest flag is
    // exact (borrows and carries run upwards from a flagged byte); it is the only one used.
    let stops = |w: u64| {
        let quote = w ^ (ONES * u64::from(b'"'));
        let backslash = w ^ (ONES * u64::from(b'\\'));
        (w.wrapping_sub(ONES * 0x21) & !w)
            | w
            | w.wrapping_add(ONES)
            | (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
    };
    while let Some(w) = load8(b, i) {
        let hits = stops(w) & HIGHS;
        if hits != 0 {
            let at = i + (hits.trailing_zeros() / 8) as usize;
            return (b[at] == b'"').then_some(at);
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        match c {
            b'"' => return Some(i),
            0x21..=0x7E if c != b'\\' => i += 1,
            _ => return None,
        }
    }
    None
}

/// Sorts the actors by id (byte order) and rejects a repeated id.
/// `bytes` holds the ids and then at least 16 zero bytes.
fn sort_actors(bytes: &[u8], ends: &[u32]) -> Result<Actors, Error> {
    let n = ends.len();
    let padded = bytes;
    let bytes = &padded[..ends.last().map_or(0, |&e| e as usize)];
    // `ends` ascends to `bytes.len()`, so every span is in range.
    let span = |i: usize| {
        let start = if i == 0 { 0 } else { ends[i - 1] as usize };
        start..ends[i] as usize
    };
    let id = |i: usize| &bytes[span(i)];

    // Multikey sort: keys hold 12 bytes of the id from some offset, big-endian (zero-padded:
    // ids hold no zero byte, so padding sorts a shorter id first, as byte order does), above
    // the index in the low 32 bits, in plain `u128` order. Ids that tie on those bytes are
    // sorted again on the next 12, until the ids end; equal ids stay in index order.
    const KEY: usize = 12;
    let key_at = |i: usize, offset: usize| {
        let span = span(i);
        let from = (span.start + offset).min(span.end);
        let m = (span.end - from).min(KEY);
        // 16 bytes are there to read: the padding follows the last id.
        let mut k = [0u8; 16];
        k.copy_from_slice(&padded[from..from + 16]);
        // Only the id's own bytes (at most 12) are kept; n <= ACTORS_HARD_MAX, so the index
        // fits in the low 32 bits.
        u128::from_be_bytes(k) & !(u128::MAX >> (8 * m)) | i as u128
    };
    let index = |k: u128| (k as u32) as usize;
    // Start past the prefix all ids share.
    let common = (1..n).fold(if n == 0 { 0 } else { id(0).len() }, |len, i| {
        let (a, b) = (&id(0)[..len], id(i));
        a.iter().zip(b).take_while(|(x, y)| x == y).count()
    });
    let mut order: Vec<u128> = (0..n).map(|i| key_at(i, common)).collect();
    // Ranges of `order` still to sort, with the offset of their keys; a range's ids agree
    // up to that offset, and ids are at most ACTOR_LEN_MAX bytes, so this ends.
    let mut todo = vec![(0..n, common)];
    // The smallest index of an id equal to one before it.
    let mut repeat: Option<usize> = None;
    while let Some((range, offset)) = todo.pop() {
        let part = &mut order[range.clone()];
        // Keys are unique (the index is part of them), so an unstable sort is deterministic.
        // It beats a radix sort over the key bytes that differ: mixed ids vary in most of
        // their 12 bytes, and 12 passes cost more than log2(n) comparison rounds (M: sort
        // 4.12 M -> 2.06 M Ir; PERFORMANCE.md §9).
        part.sort_unstable();
        let next = offset + KEY;
        let mut start = 0;
        for group in part.chunk_by_mut(|a, b| a >> 32 == b >> 32) {
            let len = group.len();
            if len > 1 {
                if group.iter().any(|&k| id(index(k)).len() > next) {
                    for k in group.iter_mut() {
                        *k = key_at(index(*k), next);
                    }
                    todo.push((range.start + start..range.start + start + len, next));
                } else {
                    // Ids that all end within the key are equal (ids hold no zero byte), in
                    // document order: the second is the first repeat of the group.
                    let second = index(group[1]);
                    repeat = Some(repeat.map_or(second, |r| r.min(second)));
                }
            }
            start += len;
        }
    }

    if let Some(i) = repeat {
        return Err(Error::at(Code::DuplicateActor, "actors", i, "actor id listed twice"));
    }

    let mut sorted = Vec::with_capacity(bytes.len());
    let mut sorted_ends = Vec::with_capacity(n);
    let mut rank = vec![0u32; n];
    let mut by_rank = Vec::with_capacity(n);
    for (r, &k) in order.iter().enumerate() {
        let i = index(k);
        sorted.extend_from_slice(id(i));
        sorted_ends.push(sorted.len() as u32); // the same total length as `bytes`
        rank[i] = r as u32; // r < n
        by_rank.push(i as u32);
    }
    // Every id was checked to be printable ASCII.
    let bytes =
        String::from_utf8(sorted).map_err(|_| Error::new(Code::Internal, "actor ids are not ASCII"))?;
    Ok(Actors { bytes, ends: sorted_ends, rank, order: by_rank })
}

/// One event as scanned; `actor` and `kind` saturate (both are range-checked later).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Event {
    id: u64,
    actor: u32,
    kind: u64,
    units: u64,
}

impl Event {
    /// The event, if the id and units are in range.
    #[inline(always)]
    fn new(id: u64, actor: u64, kind: u64, units: u64) -> Option<Event> {
        let actor = u32::try_from(actor).unwrap_or(u32::MAX);
        (id <= INT_MAX && units <= INT_MAX).then_some(Event {
            id,
            actor,
            kind: kind.min(KIND_SATURATED),
            units,
        })
    }
}

/// The events as scanned, in document order (struct of arrays).
#[derive(Default)]
struct Events {
    ids: Vec<u64>,
    /// Actor index as written, `u32::MAX` when larger.
    actors: Vec<u32>,
    /// `kind << UNITS_BITS | units`, kinds above 511 clamped to 511.
    packed: Vec<u64>,
}

impl Events {
    fn push(&mut self, e: Event) {
        self.ids.push(e.id);
        self.actors.push(e.actor);
        self.packed.push(e.kind << UNITS_BITS | e.units);
    }

    fn reserve(&mut self, additional: usize) {
        self.ids.reserve(additional);
        self.actors.reserve(additional);
        self.packed.reserve(additional);
    }
}

fn events(sc: &mut Scanner<'_>, events: &mut Events, limits: &Limits) -> Result<(), Error> {
    if sc.peek() != Some(b'[') {
        let msg = "must be an array of [event_id, actor_index, kind_index, units]";
        return Err(Error::field(Code::InvalidEvent, "events", msg));
    }
    let max = limits.events_max.min(EVENTS_HARD_MAX);
    let b = sc.bytes();
    let mut p = json::skip_ws(b, sc.pos() + 1);
    if b.get(p) == Some(&b']') {
        sc.set_pos(p + 1);
        return Ok(());
    }
    // A compact event takes at least 10 bytes, typical ones about 30: reserving one per 20
    // bytes left rarely needs to grow (untouched capacity costs address space, not memory).
    events.reserve((b.len().saturating_sub(p) / 20).min(max));
    loop {
        let index = events.ids.len();
        if index >= max {
            return Err(limit_exceeded("events", max));
        }
        let (event, next) = match compact_event(b, p).or_else(|| spaced_event(b, p)) {
            Some(found) => found,
            None => {
                sc.set_pos(p);
                let event = slow_event(sc, index)?;
                (event, sc.pos())
            }
        };
        events.push(event);
        p = next;
        if b.get(p) != Some(&b',') {
            p = json::skip_ws(b, p);
            match b.get(p) {
                Some(b',') => {}
                Some(b']') => {
                    sc.set_pos(p + 1);
                    return Ok(());
                }
                _ => return Err(json::malformed(p, "expected ',' or ']'")),
            }
        }
        p += 1;
        if b.get(p) != Some(&b'[') {
            p = json::skip_ws(b, p);
        }
    }
}

/// The common case, compact: `[` four plain integers of up to 15 digits separated by `,` `]`,
/// ids and units in range. Anything else returns `None`.
#[inline(always)]
fn compact_event(b: &[u8], p: usize) -> Option<(Event, usize)> {
    if b.get(p) != Some(&b'[') {
        return None;
    }
    let (id, p) = uint(b, p + 1)?;
    let (actor, p) = uint(b, after(b, p, b',')?)?;
    let p = after(b, p, b',')?;
    // A kind index is mostly one digit: no need for the wide path.
    let (kind, p) = match b.get(p..p + 2) {
        Some(&[d @ b'0'..=b'9', b',']) => (u64::from(d - b'0'), p + 1),
        _ => uint(b, p)?,
    };
    let (units, p) = uint(b, after(b, p, b',')?)?;
    let p = after(b, p, b']')?;
    Some((Event::new(id, actor, kind, units)?, p))
}

/// As [`compact_event`], with whitespace around the numbers.
fn spaced_event(b: &[u8], p: usize) -> Option<(Event, usize)> {
    if b.get(p) != Some(&b'[') {
        return None;
    }
    let ws = |p| json::skip_ws(b, p);
    let (id, p) = uint(b, ws(p + 1))?;
    let (actor, p) = uint(b, ws(after(b, ws(p), b',')?))?;
    let (kind, p) = uint(b, ws(after(b, ws(p), b',')?))?;
    let (units, p) = uint(b, ws(after(b, ws(p), b',')?))?;
    let p = after(b, ws(p), b']')?;
    Some((Event::new(id, actor, kind, units)?, p))
}

/// Past `byte` at `p`.
#[inline(always)]
fn after(b: &[u8], p: usize, byte: u8) -> Option<usize> {
    (b.get(p) == Some(&byte)).then_some(p + 1)
}

/// A run of 1 to 15 digits without a leading zero, eight bytes at a time (the caller checks
/// what follows: a fraction or exponent does not pass for a separator).
#[inline(always)]
fn uint(b: &[u8], p: usize) -> Option<(u64, usize)> {
    let Some(chunk) = load8(b, p) else {
        return uint_bytewise(b, p);
    };
    let n = digit_count(chunk);
    let (value, end) = if n < 8 {
        if n == 0 {
            return None;
        }
        (digits_value(chunk, n), p + n as usize)
    } else {
        let Some(next) = load8(b, p + 8) else {
            return uint_bytewise(b, p);
        };
        let m = digit_count(next);
        let high = digits_value(chunk, 8);
        match m {
            0 => (high, p + 8),
            // Below 10^15: no overflow.
            1..=7 => (high * POW10[m as usize] + digits_value(next, m), p + 8 + m as usize),
            _ => return None,
        }
    };
    if chunk as u8 == b'0' && end > p + 1 {
        return None;
    }
    Some((value, end))
}

const POW10: [u64; 8] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000];

/// How many bytes of `chunk`, first byte first, are ASCII digits before one that is not.
///
/// A byte is a digit when its high nibble is 3 both as is and plus 6. Adding 6 carries into
/// the next byte only from a byte of 0xFA or more, itself no digit: bytes after the first
/// non-digit may be misjudged, which does not change the count.
#[inline(always)]
fn digit_count(chunk: u64) -> u32 {
    const HIGH: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    const THREES: u64 = 0x3030_3030_3030_3030;
    let plus6 = chunk.wrapping_add(0x0606_0606_0606_0606);
    let non_digit = ((chunk & HIGH) ^ THREES) | ((plus6 & HIGH) ^ THREES);
    non_digit.trailing_zeros() / 8
}

/// The value of the first `n` (1..=8) bytes of `chunk`, all ASCII digits.
#[inline(always)]
fn digits_value(chunk: u64, n: u32) -> u64 {
    // Move the digits to the top bytes; the zero bytes shifted in below act as leading zeros.
    let v = (chunk & 0x0F0F_0F0F_0F0F_0F0F) << (8 * (8 - n));
    // Combine neighbours: pairs of digits, then of 2-digit, then of 4-digit numbers.
    let v = (v.wrapping_mul(10) + (v >> 8)) & 0x00FF_00FF_00FF_00FF;
    let v = (v.wrapping_mul(100) + (v >> 16)) & 0x0000_FFFF_0000_FFFF;
    (v.wrapping_mul(10_000) + (v >> 32)) & 0xFFFF_FFFF
}

/// [`uint`] a byte at a time, for the last bytes of the document.
fn uint_bytewise(b: &[u8], p: usize) -> Option<(u64, usize)> {
    let mut i = p;
    let mut v: u64 = 0;
    while let Some(&d @ b'0'..=b'9') = b.get(i) {
        if i - p == 15 {
            return None;
        }
        v = v * 10 + u64::from(d - b'0');
        i += 1;
    }
    let len = i - p;
    if len == 0 || (len > 1 && b.get(p) == Some(&b'0')) {
        return None;
    }
    Some((v, i))
}

/// Any event the fast paths declined: shape first (`invalid_event`), then each number
/// (`invalid_number`); syntax errors are `malformed_json`.
fn slow_event(sc: &mut Scanner<'_>, index: usize) -> Result<Event, Error> {
    let shape = || {
        let msg = "an event must be an array [event_id, actor_index, kind_index, units]";
        Error::at(Code::InvalidEvent, "events", index, msg)
    };
    if sc.peek() != Some(b'[') {
        return Err(shape());
    }
    let mut nums: [Option<Num>; 4] = [None; 4];
    let count = sc.array(|sc, j| {
        let num = if sc.at_number() {
            Some(sc.number()?)
        } else {
            sc.skip_value(EVENT_ELEMENT_DEPTH)?;
            None
        };
        if let Some(slot) = nums.get_mut(j) {
            *slot = num;
        }
        Ok(())
    })?;
    if count != 4 {
        return Err(shape());
    }
    let bad = |msg: &str| Error::at(Code::InvalidNumber, "events", index, msg);
    let [id, actor, kind, units] = nums;
    let id = id
        .and_then(|n| n.uint_max(INT_MAX))
        .ok_or_else(|| bad("event_id must be an integer from 0 to 2^53-1"))?;
    let index_of = |n: Option<Num>, msg: &str| match n {
        Some(Num::Uint(v)) => Ok(v),
        Some(Num::UintOverflow) => Ok(u64::MAX),
        _ => Err(bad(msg)),
    };
    let actor = index_of(actor, "actor_index must be an integer below the number of actors")?;
    let kind = index_of(kind, "kind_index must be an integer below the number of kinds")?;
    let units = units
        .and_then(|n| n.uint_max(INT_MAX))
        .ok_or_else(|| bad("units must be an integer from 0 to 2^53-1"))?;
    // Both in range here, so `new` keeps the event.
    Event::new(id, actor, kind, units).ok_or_else(|| bad("event_id or units out of range"))
}

/// Events summed while they were scanned ([`Doc::sum_events`]).
struct Summed {
    /// Per document actor index × kind: [`TOUCHED`] | the sum of units, 0 when no event
    /// touched it.
    cells: Vec<u64>,
    /// The event ids in document order (for `duplicate_event`, after the whole document).
    ids: Vec<u64>,
}

/// The bit of a summed cell that says an event touched it (a sum of 0 units still counts).
const TOUCHED: u64 = 1 << 63;
/// A summed cell whose sum reaches this bit falls back to the 128-bit sums: one more event
/// of at most 2^53 − 1 units can then never carry into [`TOUCHED`] or beyond.
const SUM_SENTINEL: u64 = 1 << 62;

/// Bytes of the document an event of the fast path is read from; a window of that many
/// bytes plus one word must remain (the last events take the general path). Every offset
/// inside it is masked to the window, which costs one instruction where a bounds check
/// costs two, and keeps the fast path free of panics.
const WINDOW: usize = 128;
/// The window plus the word a read at its last offset takes.
const WINDOW_READ: usize = WINDOW + 8;

const _: () = assert!(WINDOW.is_power_of_two());
// Four numbers of 15 digits and five separators fit in the window.
const _: () = assert!(4 * 15 + 5 < WINDOW);
const _: () = assert!(INT_MAX < SUM_SENTINEL && SUM_SENTINEL < TOUCHED);

/// Scans the `events` array at `start` (its `[`) summing each event into a matrix of
/// `cell_count` cells; returns the sums and the offset past the array, or `None` at the
/// first thing the fast path does not take (see [`Doc::sum_events`]).
#[inline(never)]
fn summed_events(
    b: &[u8],
    start: usize,
    kind_count: usize,
    cell_count: usize,
    max: usize,
) -> Option<(Summed, usize)> {
    if b.get(start) != Some(&b'[') {
        return None;
    }
    let mut p = json::skip_ws(b, start + 1);
    let mut cells = vec![0u64; cell_count];
    if b.get(p) == Some(&b']') {
        return Some((Summed { cells, ids: Vec::new() }, p + 1));
    }
    // A compact event takes at least 10 bytes, typical ones about 30.
    let mut ids: Vec<u64> = Vec::with_capacity((b.len().saturating_sub(p) / 24).min(max));
    // Every stored sum, or-ed: SUM_SENTINEL set means some sum grew too large.
    let mut sums_seen = 0u64;
    let kind_count_u64 = kind_count as u64;
    loop {
        if ids.len() >= max {
            return None;
        }
        let quick = match window_at(b, p) {
            Some(window) => window_event(window)
                .map(|(id, actor, kind, units, len)| (id, actor, kind, units, p + len, chained(window, len))),
            None => None,
        };
        let (id, actor, kind, units, next, chained) = match quick {
            Some(event) => event,
            None => {
                let (e, next) = compact_event(b, p).or_else(|| spaced_event(b, p))?;
                (e.id, u64::from(e.actor), e.kind, e.units, next, false)
            }
        };
        if kind >= kind_count_u64 {
            return None;
        }
        // With kind < kind_count, the cell is in the matrix exactly when actor < actor_count:
        // one bounds check for both (actor < 10^15 and kind_count <= 256: no overflow).
        let cell = cells.get_mut(usize::try_from(actor * kind_count_u64 + kind).ok()?)?;
        let sum = (*cell | TOUCHED) + units;
        *cell = sum;
        sums_seen |= sum;
        ids.push(id);
        p = next;
        if chained {
            p += 1;
            continue;
        }
        if b.get(p) != Some(&b',') {
            p = json::skip_ws(b, p);
            match b.get(p) {
                Some(b',') => {}
                Some(b']') if sums_seen & SUM_SENTINEL == 0 => {
                    return Some((Summed { cells, ids }, p + 1));
                }
                _ => return None,
            }
        }
        p += 1;
        if b.get(p) != Some(&b'[') {
            p = json::skip_ws(b, p);
        }
    }
}

/// The window of the fast event reader at an event whose `[` is at `p`, when the document
/// has that many bytes after it.
#[inline(always)]
fn window_at(b: &[u8], p: usize) -> Option<&[u8; WINDOW_READ]> {
    // Not `p..p + WINDOW_READ`: that range also checks the sum for overflow.
    let window: &[u8; WINDOW_READ] = b.get(p..)?.first_chunk()?;
    (window[0] == b'[').then_some(window)
}

/// The bytes of a word XOR `'0'` (digits become 0..=9), and a mask with the high bit set in
/// every byte that is not an ASCII digit. Only the lowest flagged byte is exact (a byte of
/// 0x8A or more carries into the next): enough to find where the digits end.
#[inline(always)]
fn classify(w: u64) -> (u64, u64) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let t = w ^ (ONES * u64::from(b'0'));
    (t, (t.wrapping_add(ONES * 0x76) | t) & (ONES * 0x80))
}

/// The value of the `n` (1..=8) digits in the low bytes of `t` (as from [`classify`]), the
/// first one the most significant: three multiply-shift steps over pairs, quads, octets.
#[inline(always)]
fn octet_value(t: u64, n: u32) -> u64 {
    // The digits move to the top bytes; the zeros shifted in below are leading zeros.
    let v = t << ((64 - 8 * n) & 63);
    let v = (v.wrapping_mul(10 << 8 | 1) >> 8) & 0x00FF_00FF_00FF_00FF;
    let v = (v.wrapping_mul(100 << 16 | 1) >> 16) & 0x0000_FFFF_0000_FFFF;
    v.wrapping_mul(10_000 << 32 | 1) >> 32
}

/// The 8 bytes of the window at `o` (masked into the window).
#[inline(always)]
fn window_word(w: &[u8; WINDOW_READ], o: usize) -> u64 {
    let o = o & (WINDOW - 1);
    let mut word = [0u8; 8];
    word.copy_from_slice(&w[o..o + 8]);
    u64::from_le_bytes(word)
}

/// The byte of the window at `o` (masked into the window).
#[inline(always)]
fn window_byte(w: &[u8; WINDOW_READ], o: usize) -> u8 {
    w[o & (WINDOW - 1)]
}

/// A JSON integer of 1 to 15 digits at offset `s` of the window (no leading zero): its
/// value and the offset past it.
#[inline(always)]
fn window_uint(w: &[u8; WINDOW_READ], s: usize) -> Option<(u64, usize)> {
    let (t, nd) = classify(window_word(w, s));
    let (value, n) = if nd != 0 {
        let n = nd.trailing_zeros() / 8;
        if n == 0 {
            return None;
        }
        (octet_value(t, n), n)
    } else {
        let (t2, nd2) = classify(window_word(w, s + 8));
        let m = nd2.trailing_zeros() / 8;
        match m {
            0 => (octet_value(t, 8), 8),
            // Below 10^15: no overflow.
            1..=7 => (octet_value(t, 8) * POW10[m as usize] + octet_value(t2, m), 8 + m),
            _ => return None,
        }
    };
    // A leading zero: the first digit is 0 and others follow.
    if t as u8 == 0 && n > 1 {
        return None;
    }
    Some((value, s + n as usize))
}

/// A compact event `[id,actor,kind,units]` at the start of the window, of plain integers of
/// up to 15 digits: `(id, actor, kind, units, length)`. The 15-digit bound keeps ids and
/// units at or below 2^53 − 1 without a comparison.
#[inline(always)]
fn window_event(w: &[u8; WINDOW_READ]) -> Option<(u64, u64, u64, u64, usize)> {
    let (id, o) = window_uint(w, 1)?;
    if window_byte(w, o) != b',' {
        return None;
    }
    let (actor, o) = window_uint(w, o + 1)?;
    if window_byte(w, o) != b',' {
        return None;
    }
    // A kind index is mostly one digit.
    let d = window_byte(w, o + 1).wrapping_sub(b'0');
    let (kind, o) = if d < 10 && window_byte(w, o + 2) == b',' {
        (u64::from(d), o + 2)
    } else {
        let (kind, o) = window_uint(w, o + 1)?;
        if window_byte(w, o) != b',' {
            return None;
        }
        (kind, o)
    };
    let (units, o) = window_uint(w, o + 1)?;
    if window_byte(w, o) != b']' {
        return None;
    }
    Some((id, actor, kind, units, o + 1))
}

/// Whether the event of `len` bytes at the start of the window is followed by `,[` (the next
/// event, compact): the caller then skips its separator checks. The `]` and the two bytes
/// after it are one read.
#[inline(always)]
fn chained(w: &[u8; WINDOW_READ], len: usize) -> bool {
    window_word(w, len - 1) & 0xFF_FFFF == u64::from(u32::from_le_bytes(*b"],[\0"))
}

/// Usage from the dense matrix of 1 + sums indexed by document actor index, in sorted order.
fn usage_from_doc_cells(
    cells: &[u64],
    order: &[u32],
    kind_count: usize,
    event_count: usize,
) -> (Vec<Usage>, Vec<u32>) {
    let mut usage: Vec<Usage> = Vec::with_capacity(cells.len().min(event_count));
    let mut usage_ends: Vec<u32> = Vec::with_capacity(order.len());
    for &i in order {
        let start = i as usize * kind_count;
        // i < actor_count, so the row is inside the matrix.
        for (k, &cell) in cells[start..start + kind_count].iter().enumerate() {
            if cell != 0 {
                // k < kind_count <= KINDS_MAX: fits in a u16.
                usage.push(Usage { kind: k as u16, units: u128::from(cell & !TOUCHED) });
            }
        }
        usage_ends.push(usage.len() as u32); // usage.len() <= events <= EVENTS_HARD_MAX
    }
    (usage, usage_ends)
}

/// Checks the events against the actors and kinds (the first bad one in document order),
/// rejects a repeated event id, and sums units per actor (sorted order) and kind:
/// `(usage, usage_ends)`.
fn aggregate(
    events: Events,
    rank: &[u32],
    kind_count: usize,
    doc_len: usize,
) -> Result<(Vec<Usage>, Vec<u32>), Error> {
    let Events { ids, actors: mut ranks, packed } = events;
    let actor_count = rank.len();

    // Indices in range; actor index -> rank, in place.
    for (i, (actor, &p)) in ranks.iter_mut().zip(&packed).enumerate() {
        let Some(&r) = rank.get(*actor as usize) else {
            let msg = "actor_index must be an integer below the number of actors";
            return Err(Error::at(Code::InvalidNumber, "events", i, msg));
        };
        if (p >> UNITS_BITS) as usize >= kind_count {
            let msg = "kind_index must be an integer below the number of kinds";
            return Err(Error::at(Code::InvalidNumber, "events", i, msg));
        }
        *actor = r;
    }

    if let Some(i) = first_repeat(&ids) {
        return Err(Error::at(Code::DuplicateEvent, "events", i, "event id seen twice"));
    }

    // The dense matrix when it takes no more bytes than the document. A cell holds 1 + the
    // sum once an event touched it; a sum too large for that falls back to the groups.
    let cell_count = actor_count.saturating_mul(kind_count);
    if cell_count.saturating_mul(size_of::<u64>()) <= doc_len.max(DENSE_BYTES_MIN) {
        let mut cells = vec![0u64; cell_count];
        let mut overflow = false;
        for (&r, &p) in ranks.iter().zip(&packed) {
            // r < actor_count and the kind below kind_count: the cell is in range.
            let cell = &mut cells[r as usize * kind_count + (p >> UNITS_BITS) as usize];
            let (sum, carry) = (*cell | u64::from(*cell == 0)).overflowing_add(p & INT_MAX);
            *cell = sum;
            overflow |= carry;
        }
        if !overflow {
            return Ok(usage_from_cells(&cells, kind_count, packed.len()));
        }
    }
    Ok(usage_from_groups(&ranks, &packed, actor_count))
}

/// Usage from the dense actor × kind matrix of 1 + sums (0: no event).
fn usage_from_cells(cells: &[u64], kind_count: usize, event_count: usize) -> (Vec<Usage>, Vec<u32>) {
    let mut usage: Vec<Usage> = Vec::with_capacity(event_count.min(cells.len()));
    let mut usage_ends: Vec<u32> = Vec::with_capacity(cells.len() / kind_count.max(1));
    for row in cells.chunks_exact(kind_count.max(1)) {
        for (k, &cell) in row.iter().enumerate() {
            if cell != 0 {
                // k < kind_count <= KINDS_MAX: fits in a u16.
                usage.push(Usage { kind: k as u16, units: u128::from(cell - 1) });
            }
        }
        usage_ends.push(usage.len() as u32); // usage.len() <= events <= EVENTS_HARD_MAX
    }
    (usage, usage_ends)
}

/// Usage by a counting sort of the packed events on actor rank.
fn usage_from_groups(ranks: &[u32], packed: &[u64], actor_count: usize) -> (Vec<Usage>, Vec<u32>) {
    // starts[r]..starts[r + 1] will hold the events of rank r (every rank < actor_count;
    // counts stay below EVENTS_HARD_MAX).
    let mut starts = vec![0u32; actor_count + 1];
    for &r in ranks {
        starts[r as usize + 1] += 1;
    }
    for r in 1..starts.len() {
        starts[r] += starts[r - 1];
    }
    let mut next = starts.clone();
    let mut grouped = vec![0u64; packed.len()];
    for (&r, &p) in ranks.iter().zip(packed) {
        // Every rank is below the number of actors; the slots of rank r end at starts[r + 1].
        let slot = &mut next[r as usize];
        grouped[*slot as usize] = p;
        *slot += 1;
    }

    // Per actor, sum units per kind in a scratch array; `stamp` says which actor last
    // touched a kind, so nothing is reset between actors.
    let mut usage: Vec<Usage> = Vec::with_capacity(packed.len());
    let mut usage_ends: Vec<u32> = Vec::with_capacity(starts.len().saturating_sub(1));
    let mut sums = [0u128; KINDS_MAX];
    let mut stamp = [u32::MAX; KINDS_MAX];
    let mut touched: Vec<u16> = Vec::with_capacity(KINDS_MAX);
    for (r, bounds) in starts.windows(2).enumerate() {
        let r = r as u32; // r < actor_count < u32::MAX, so never the initial stamp
        for &p in &grouped[bounds[0] as usize..bounds[1] as usize] {
            // Checked before: the kind index is below kind_count <= KINDS_MAX.
            let k = (p >> UNITS_BITS) as usize & (KINDS_MAX - 1);
            let units = u128::from(p & INT_MAX);
            if stamp[k] == r {
                sums[k] += units;
            } else {
                stamp[k] = r;
                sums[k] = units;
                touched.push(k as u16);
            }
        }
        touched.sort_unstable();
        usage.extend(touched.iter().map(|&k| Usage { kind: k, units: sums[usize::from(k)] }));
        touched.clear();
        usage_ends.push(usage.len() as u32); // usage.len() <= events <= EVENTS_HARD_MAX
    }
    (usage, usage_ends)
}

/// The index of the first id, in document order, equal to an earlier one.
fn first_repeat(ids: &[u64]) -> Option<usize> {
    if ids.len() < 2 {
        return None;
    }
    let (min, max) = ids.iter().fold((u64::MAX, 0), |(lo, hi), &id| (lo.min(id), hi.max(id)));
    // Dense ids (the usual case): one bit per possible id, at most 8 bytes per event.
    let span = max - min;
    if span < (ids.len() as u64).saturating_mul(64).max(1 << 16) {
        return first_repeat_in_bitmap(ids, min, span);
    }
    // Sparse ids: sort a copy; only when a repeat exists, find the first in document order.
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    if sorted.windows(2).all(|w| w[0] != w[1]) {
        return None;
    }
    let mut seen = HashSet::with_capacity(ids.len());
    ids.iter().position(|id| !seen.insert(*id))
}

/// [`first_repeat`] for ids from `min` to `min + span`: one bit per possible id.
fn first_repeat_in_bitmap(ids: &[u64], min: u64, span: u64) -> Option<usize> {
    let mut seen = vec![0u64; (span / 64 + 1) as usize];
    for &id in ids {
        let offset = id - min;
        // offset <= span, so the word is in range.
        seen[(offset / 64) as usize] |= 1 << (offset % 64);
    }
    // Without a repeat every id set a bit of its own, so counting the bits settles it
    // without a test per id; only a document with a repeat takes the second pass.
    let distinct: u64 = seen.iter().map(|w| u64::from(w.count_ones())).sum();
    if distinct == ids.len() as u64 {
        return None;
    }
    seen.fill(0);
    for (i, &id) in ids.iter().enumerate() {
        let offset = id - min;
        let word = &mut seen[(offset / 64) as usize];
        let bit = 1u64 << (offset % 64);
        if *word & bit != 0 {
            return Some(i);
        }
        *word |= bit;
    }
    None
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const BASIC: &str = r#"{"schema": "rewarder.inputs.v1", "epoch": "2026-11-29", "pool_minor": "1000",
        "kinds": ["bytes_served", "uptime_s"], "actors": ["acct:carol", "acct:alice", "acct:bob"],
        "events": [[1, 1, 0, 4096], [2, 2, 1, 3600], [3, 1, 1, 60], [4, 0, 0, 10], [5, 1, 0, 4]]}"#;

    fn parse_str(doc: &str) -> Result<Inputs, Error> {
        parse(doc.as_bytes(), &Limits::UNBOUNDED)
    }

    fn code(doc: &str) -> Code {
        match parse_str(doc) {
            Ok(_) => panic!("accepted: {doc}"),
            Err(e) => e.code(),
        }
    }

    /// A minimal valid document with one field's value replaced.
    fn with(field: &str, value: &str) -> String {
        let mut fields = vec![
            ("schema", r#""rewarder.inputs.v1""#.to_owned()),
            ("epoch", r#""e1""#.to_owned()),
            ("pool_minor", r#""100""#.to_owned()),
            ("kinds", r#"["k", "j"]"#.to_owned()),
            ("actors", r#"["a", "b"]"#.to_owned()),
            ("events", "[[1, 0, 0, 5], [2, 1, 1, 6]]".to_owned()),
        ];
        for f in &mut fields {
            if f.0 == field {
                f.1 = value.to_owned();
            }
        }
        let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
        format!("{{{}}}", body.join(", "))
    }

    fn event_doc(events: &str) -> String {
        with("events", events)
    }

    fn usage_of(inputs: &Inputs, actor: &str) -> Vec<(u16, u128)> {
        let i = inputs.actor_index(actor).expect("actor present");
        inputs.usage(i).iter().map(|u| (u.kind, u.units)).collect()
    }

    fn without_cid(mut inputs: Inputs) -> Inputs {
        inputs.cid.clear();
        inputs
    }

    #[test]
    fn basic_document_is_sorted_and_aggregated() {
        let inputs = parse_str(BASIC).unwrap();
        assert_eq!(inputs.cid(), content_id(BASIC.as_bytes()));
        assert_eq!(inputs.epoch(), "2026-11-29");
        assert_eq!(inputs.pool_minor(), 1000);
        assert_eq!(inputs.kinds(), ["bytes_served", "uptime_s"]);
        assert_eq!(inputs.event_count(), 5);
        let actors: Vec<&str> = (0..inputs.actor_count()).map(|i| inputs.actor(i)).collect();
        assert_eq!(actors, ["acct:alice", "acct:bob", "acct:carol"]);
        assert_eq!(usage_of(&inputs, "acct:alice"), [(0, 4100), (1, 60)]);
        assert_eq!(usage_of(&inputs, "acct:bob"), [(1, 3600)]);
        assert_eq!(usage_of(&inputs, "acct:carol"), [(0, 10)]);
    }

    #[test]
    fn field_order_and_whitespace_do_not_matter_except_for_the_cid() {
        let reordered = r#"
            { "events" : [ [ 5 , 1 , 0 , 4 ] ,[3,1,1,60],
                [4,0,0,10],[1,1,0,4096]	,	[2,2,1,3600]
              ] ,
              "actors":["acct:carol","acct:alice","acct:bob"],"kinds":["bytes_served","uptime_s"],
              "pool_minor":"1000","epoch":"2026-11-29","schema":"rewarder.inputs.v1" }
        "#;
        let a = parse_str(BASIC).unwrap();
        let b = parse_str(reordered).unwrap();
        assert_ne!(a.cid(), b.cid());
        assert_eq!(without_cid(a), without_cid(b));
    }

    #[test]
    fn permuting_actors_and_events_changes_only_the_cid() {
        let permuted = r#"{"schema": "rewarder.inputs.v1", "epoch": "2026-11-29", "pool_minor": "1000",
            "kinds": ["bytes_served", "uptime_s"], "actors": ["acct:bob", "acct:alice", "acct:carol"],
            "events": [[5, 1, 0, 4], [4, 2, 0, 10], [3, 1, 1, 60], [2, 0, 1, 3600], [1, 1, 0, 4096]]}"#;
        let a = parse_str(BASIC).unwrap();
        let b = parse_str(permuted).unwrap();
        assert_ne!(a.cid(), b.cid());
        assert_eq!(without_cid(a), without_cid(b));
    }

    #[test]
    fn escaped_strings_are_decoded_before_the_rules() {
        let doc = r#"{"sch\u0065ma": "rewarder\u002einputs.v1", "epoch": "e\u0031", "pool_minor": "\u0031",
            "kinds": ["\u006b"], "actors": ["\u0061cct:x", "b\/c"], "events": [[1, 0, 0, 5]]}"#;
        let inputs = parse_str(doc).unwrap();
        assert_eq!(inputs.epoch(), "e1");
        assert_eq!(inputs.pool_minor(), 1);
        assert_eq!(inputs.kinds(), ["k"]);
        assert_eq!(inputs.actor(0), "acct:x");
        assert_eq!(inputs.actor(1), "b/c");
        assert_eq!(code(&with("actors", r#"["a\u0020b"]"#)), Code::InvalidActor);
        assert_eq!(code(&with("actors", r#"["\u00e9"]"#)), Code::InvalidActor);
        assert_eq!(code(&with("actors", r#"["a", "\u0061"]"#)), Code::DuplicateActor);
        assert_eq!(code(&with("kinds", r#"["k", "\u006B"]"#)), Code::InvalidKinds);
        assert_eq!(code(&with("schema", r#""rewarder.inputs.v\u0032""#)), Code::Schema);
        assert_eq!(code(&with("actors", r#"["\uD800"]"#)), Code::MalformedJson);
    }

    #[test]
    fn schema_errors() {
        assert_eq!(code("[]"), Code::Schema);
        assert_eq!(code("\"x\""), Code::Schema);
        assert_eq!(code(" 5 "), Code::Schema);
        assert_eq!(code("{}"), Code::Schema);
        assert_eq!(code(&with("schema", "1")), Code::Schema);
        assert_eq!(code(&with("schema", "\"rewarder.inputs.v1 \"")), Code::Schema);
        let twice = with("epoch", r#""e1", "epoch": "e1""#);
        let err = parse_str(&twice).unwrap_err();
        assert_eq!((err.code(), err.details()["field"].as_str()), (Code::Schema, Some("epoch")));
        let extra = with("epoch", r#""e1", "extra": {"deep": [1, 2, {"x": null}]}"#);
        let err = parse_str(&extra).unwrap_err();
        assert_eq!((err.code(), err.details()["field"].as_str()), (Code::Schema, Some("extra")));
        let missing = r#"{"schema": "rewarder.inputs.v1", "epoch": "e1", "pool_minor": "1", "kinds": ["k"], "actors": []}"#;
        let err = parse_str(missing).unwrap_err();
        assert_eq!((err.code(), err.details()["field"].as_str()), (Code::Schema, Some("events")));
    }

    #[test]
    fn malformed_json_wins_over_an_earlier_rule_violation() {
        for bad in [
            format!("{} x", with("schema", "\"nope\"")),
            format!("{},", with("epoch", "\"bad epoch\"")),
            with("epoch", "\"bad epoch\"").replace("]]}", "]]"),
            with("events", "[[1, 0, 0, 5], [1, 0, 0, 5], 01]"),
            with("events", "[[1, 0, 0, -5], [2, 0, 0, 5],]"),
            with("actors", r#"["a", "a", tru]"#),
            with("kinds", r#"["K", "\x"]"#),
            "[1, 2".to_owned(),
            "{\"schema\": \"x\", \"epoch\": \"e1\" \"kinds\": []}".to_owned(),
        ] {
            assert_eq!(code(&bad), Code::MalformedJson, "{bad}");
        }
        let mut bad_utf8 = with("epoch", "\"bad epoch\"").into_bytes();
        bad_utf8.extend_from_slice(b" \xff");
        assert_eq!(parse(&bad_utf8, &Limits::UNBOUNDED).unwrap_err().code(), Code::MalformedJson);
        let deep = with("epoch", &format!("{}{}", "[".repeat(128), "]".repeat(128)));
        assert_eq!(code(&deep), Code::MalformedJson);
        let shallower = with("epoch", &format!("{}{}", "[".repeat(127), "]".repeat(127)));
        assert_eq!(code(&shallower), Code::InvalidEpoch);
        assert_eq!(code(&format!("{}{}", "[".repeat(128), "]".repeat(128))), Code::Schema);
        assert_eq!(code(&"[".repeat(100_000)), Code::MalformedJson);
        assert_eq!(code(&event_doc(&format!("[[1, 0, 0, {}]]", "[".repeat(100_000)))), Code::MalformedJson);
        assert_eq!(code(&event_doc(&format!("[{}]", "[".repeat(100_000)))), Code::MalformedJson);
    }

    #[test]
    fn field_types_map_to_the_field_code() {
        assert_eq!(code(&with("epoch", "12")), Code::InvalidEpoch);
        assert_eq!(code(&with("epoch", "null")), Code::InvalidEpoch);
        assert_eq!(code(&with("pool_minor", "100")), Code::InvalidAmount);
        assert_eq!(code(&with("pool_minor", "[\"1\"]")), Code::InvalidAmount);
        assert_eq!(code(&with("kinds", "\"k\"")), Code::InvalidKinds);
        assert_eq!(code(&with("kinds", "[1]")), Code::InvalidKinds);
        assert_eq!(code(&with("actors", "{}")), Code::InvalidActor);
        assert_eq!(code(&with("actors", "[\"a\", 2]")), Code::InvalidActor);
        assert_eq!(code(&with("events", "{}")), Code::InvalidEvent);
        assert_eq!(code(&with("events", "null")), Code::InvalidEvent);
    }

    #[test]
    fn epoch_and_amount_rules() {
        assert!(parse_str(&with("epoch", &format!("\"{}\"", "a".repeat(128)))).is_ok());
        assert_eq!(code(&with("epoch", &format!("\"{}\"", "a".repeat(129)))), Code::InvalidEpoch);
        assert!(parse_str(&with("epoch", "\"A-z_0.9:x\"")).is_ok());
        assert_eq!(code(&with("epoch", "\"a/b\"")), Code::InvalidEpoch);
        let pool = |s: &str| parse_str(&with("pool_minor", &format!("\"{s}\""))).map(|i| i.pool_minor());
        assert_eq!(pool("0").unwrap(), 0);
        assert_eq!(pool("18446744073709551615").unwrap(), u64::MAX);
        for bad in [
            "",
            "00",
            "01",
            "+1",
            "-0",
            "1.0",
            "1e3",
            " 1",
            "1 ",
            "18446744073709551616",
            "99999999999999999999999",
        ] {
            assert_eq!(pool(bad).unwrap_err().code(), Code::InvalidAmount, "{bad:?}");
        }
        assert_eq!(parse_amount("007"), None);
        assert_eq!(parse_amount("10"), Some(10));
    }

    #[test]
    fn kinds_rules() {
        let kinds: Vec<String> = (0..256).map(|i| format!("\"k{i}\"")).collect();
        let doc = with("kinds", &format!("[{}]", kinds.join(",")));
        assert_eq!(parse_str(&doc).unwrap().kinds().len(), 256);
        let doc = with("kinds", &format!("[{}, \"extra\"]", kinds.join(",")));
        let err = parse_str(&doc).unwrap_err();
        assert_eq!((err.code(), err.details()["index"].as_u64()), (Code::InvalidKinds, Some(256)));
        assert!(parse_str(&with("kinds", &format!("[\"{}\", \"j\"]", "k".repeat(64)))).is_ok());
        assert_eq!(code(&with("kinds", &format!("[\"{}\", \"j\"]", "k".repeat(65)))), Code::InvalidKinds);
        assert_eq!(code(&with("kinds", "[\"\"]")), Code::InvalidKinds);
        assert_eq!(code(&with("kinds", "[\"a b\"]")), Code::InvalidKinds);
        assert_eq!(code(&with("kinds", "[]")), Code::InvalidKinds);
        let err = parse_str(&with("kinds", r#"["k", "j", "k"]"#)).unwrap_err();
        assert_eq!((err.code(), err.details()["index"].as_u64()), (Code::InvalidKinds, Some(2)));
    }

    #[test]
    fn actor_rules_and_duplicates_name_the_second_occurrence() {
        let long = format!("\"{}\"", "x".repeat(128));
        assert!(parse_str(&with("actors", &format!("[{long}, \"b\"]"))).is_ok());
        let too_long = format!("\"{}\"", "x".repeat(129));
        let err = parse_str(&with("actors", &format!("[\"a\", {too_long}]"))).unwrap_err();
        assert_eq!((err.code(), err.details()["index"].as_u64()), (Code::InvalidActor, Some(1)));
        assert_eq!(code(&with("actors", "[\"a\", \"\"]")), Code::InvalidActor);
        assert_eq!(code(&with("actors", "[\"a\", \"b\\u007f\"]")), Code::InvalidActor);
        assert!(parse_str(&with("actors", "[\"!\", \"~\"]")).is_ok());
        let err = parse_str(&with("actors", r#"["z", "y", "a", "b", "y", "z", "b"]"#)).unwrap_err();
        assert_eq!(err.code(), Code::DuplicateActor);
        assert_eq!(err.details()["field"], "actors");
        assert_eq!(err.details()["index"], 4);
        // Ids that share a long prefix, differ past the 8-byte key, and prefix one another.
        let doc = with(
            "actors",
            r#"["acct:00000000000b", "acct:00000000000a", "acct:0000000000", "acct:00000000", "acct:0000000000a"]"#,
        );
        let inputs = parse_str(&doc).unwrap();
        let actors: Vec<&str> = (0..inputs.actor_count()).map(|i| inputs.actor(i)).collect();
        assert_eq!(
            actors,
            [
                "acct:00000000",
                "acct:0000000000",
                "acct:00000000000a",
                "acct:00000000000b",
                "acct:0000000000a"
            ]
        );
        let doc = with("actors", r#"["acct:00000000000b", "acct:00000000", "acct:00000000000b"]"#);
        let err = parse_str(&doc).unwrap_err();
        assert_eq!((err.code(), err.details()["index"].as_u64()), (Code::DuplicateActor, Some(2)));
    }

    #[test]
    fn event_shapes_and_numbers() {
        for (events, expected) in [
            ("[[1, 0, 0]]", Code::InvalidEvent),
            ("[[1, 0, 0, 5, 6]]", Code::InvalidEvent),
            ("[[]]", Code::InvalidEvent),
            ("[{\"id\": 1}]", Code::InvalidEvent),
            ("[null]", Code::InvalidEvent),
            ("[5]", Code::InvalidEvent),
            ("[[1, \"x\", 0]]", Code::InvalidEvent),
            ("[[1, \"0\", 0, 5]]", Code::InvalidNumber),
            ("[[1, [0], 0, 5]]", Code::InvalidNumber),
            ("[[1, 0, 0, null]]", Code::InvalidNumber),
            ("[[1, 0, 0, -0]]", Code::InvalidNumber),
            ("[[1, 0, 0, -5]]", Code::InvalidNumber),
            ("[[1, 0, 0, 1e3]]", Code::InvalidNumber),
            ("[[1, 0, 0, 1.0]]", Code::InvalidNumber),
            ("[[1.5, 0, 0, 1]]", Code::InvalidNumber),
            ("[[9007199254740992, 0, 0, 1]]", Code::InvalidNumber),
            ("[[1, 0, 0, 9007199254740992]]", Code::InvalidNumber),
            ("[[1, 0, 0, 99999999999999999999999999]]", Code::InvalidNumber),
            ("[[1, 2, 0, 1]]", Code::InvalidNumber),
            ("[[1, 4294967295, 0, 1]]", Code::InvalidNumber),
            ("[[1, 4294967296, 0, 1]]", Code::InvalidNumber),
            ("[[1, 99999999999999999999999, 0, 1]]", Code::InvalidNumber),
            ("[[1, 0, 2, 1]]", Code::InvalidNumber),
            ("[[1, 0, 256, 1]]", Code::InvalidNumber),
            ("[[1, 0, 511, 1]]", Code::InvalidNumber),
            ("[[1, 0, 99999999999999999999, 1]]", Code::InvalidNumber),
            ("[[1, 0, 0, 01]]", Code::MalformedJson),
            ("[[1, 0, 0, 5],]", Code::MalformedJson),
            ("[[1, 0, 0, 5]", Code::MalformedJson),
            ("[[1, 0, 0, 5] [2, 0, 0, 5]]", Code::MalformedJson),
            ("[[1, 0, 0 5]]", Code::MalformedJson),
            ("[[1, 0, 0, 5}]", Code::MalformedJson),
            ("[[1, 0, 0, +5]]", Code::MalformedJson),
            ("[[1, 0, 0, .5]]", Code::MalformedJson),
            ("[[1, 0, 0, 5.]]", Code::MalformedJson),
        ] {
            assert_eq!(code(&event_doc(events)), expected, "{events}");
        }
        let huge = format!("[[1, 0, 0, {}]]", "9".repeat(10_000));
        assert_eq!(code(&event_doc(&huge)), Code::InvalidNumber);
        let top = format!("[[{}, 1, 1, {}]]", INT_MAX, INT_MAX);
        let inputs = parse_str(&event_doc(&top)).unwrap();
        assert_eq!(usage_of(&inputs, "b"), [(1, u128::from(INT_MAX))]);
        let valid_deep = format!("[[1, 0, 0, {}{}]]", "[".repeat(120), "]".repeat(120));
        assert_eq!(code(&event_doc(&valid_deep)), Code::InvalidNumber);
    }

    #[test]
    fn event_errors_name_the_event_index() {
        let err = parse_str(&event_doc("[[1, 0, 0, 5], [2, 0, 0, 5], [3, 0, 0, -1]]")).unwrap_err();
        assert_eq!((err.code(), err.details()["field"].as_str()), (Code::InvalidNumber, Some("events")));
        assert_eq!(err.details()["index"], 2);
        let err = parse_str(&event_doc("[[1, 0, 0, 5], [2, 0, 0]]")).unwrap_err();
        assert_eq!((err.code(), err.details()["index"].as_u64()), (Code::InvalidEvent, Some(1)));
        let err =
            parse_str(&event_doc("[[7, 0, 0, 5], [2, 0, 0, 5], [3, 1, 1, 5], [2, 1, 0, 1], [7, 0, 0, 1]]"))
                .unwrap_err();
        assert_eq!((err.code(), err.details()["index"].as_u64()), (Code::DuplicateEvent, Some(3)));
        // Sparse ids take the sorting path.
        let sparse = format!(
            "[[5, 0, 0, 1], [{}, 0, 0, 1], [9, 0, 0, 1], [{}, 1, 1, 1], [5, 0, 0, 1]]",
            INT_MAX, INT_MAX
        );
        let err = parse_str(&event_doc(&sparse)).unwrap_err();
        assert_eq!((err.code(), err.details()["index"].as_u64()), (Code::DuplicateEvent, Some(3)));
        // Indices are checked after the scan, so events may come before actors and kinds.
        let early = r#"{"schema": "rewarder.inputs.v1", "events": [[1, 0, 0, 5], [2, 0, 3, 5], [3, 2, 0, 5]],
            "epoch": "e1", "pool_minor": "100", "kinds": ["k", "j"], "actors": ["a", "b"]}"#;
        let err = parse_str(early).unwrap_err();
        assert_eq!((err.code(), err.details()["index"].as_u64()), (Code::InvalidNumber, Some(1)));
    }

    /// What `uint` must return: 1 to 15 digits without a leading zero.
    fn uint_reference(b: &[u8], p: usize) -> Option<(u64, usize)> {
        let digits = b.get(p..).unwrap_or_default().iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 || digits > 15 || (digits > 1 && b[p] == b'0') {
            return None;
        }
        let text = std::str::from_utf8(&b[p..p + digits]).unwrap();
        Some((text.parse().unwrap(), p + digits))
    }

    #[test]
    fn wide_integer_reading_matches_a_reference_at_every_length_and_offset() {
        let enders: [&[u8]; 8] = [b",", b"]", b".5", b"e3", b" ", b":", b"\xff", b""];
        for len in 0..=18 {
            for first in [b'0', b'1', b'9'] {
                for ender in enders {
                    for pad in 0..3 {
                        let mut doc = b"[".repeat(pad);
                        let start = doc.len();
                        doc.extend(
                            (0..len).map(|i| if i == 0 { first } else { b"0123456789"[(i * 7 + 3) % 10] }),
                        );
                        doc.extend_from_slice(ender);
                        // Also with bytes after, so that the eight-byte reads are taken.
                        let mut padded = doc.clone();
                        padded.extend_from_slice(b",1,2,3,4,5,6,7,8,9,0]]]]");
                        for bytes in [&doc, &padded] {
                            assert_eq!(
                                uint(bytes, start),
                                uint_reference(bytes, start),
                                "{:?}",
                                String::from_utf8_lossy(bytes)
                            );
                        }
                    }
                }
            }
        }
        assert_eq!(uint(b"999999999999999,", 0), Some((999_999_999_999_999, 15)));
        assert_eq!(uint(b"9999999999999999,", 0), None);
        assert_eq!(uint(b"12345678,", 0), Some((12_345_678, 8)));
        assert_eq!(uint(b"123456789,", 0), Some((123_456_789, 9)));
    }

    #[test]
    fn window_reader_agrees_with_the_general_reader() {
        // Events of numbers of 0 to 17 digits (leading zeros too), odd separators and bytes,
        // each followed by enough bytes for the window; whatever the window reader accepts,
        // the general compact reader reads the same, and plain events are accepted.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut accepted = 0;
        for _ in 0..50_000 {
            let mut event = b"[".to_vec();
            let odd = next() % 8 == 0;
            for (j, sep) in [b',', b',', b',', b']'].into_iter().enumerate() {
                let len = if next() % 4 == 0 { (next() % 18) as usize } else { 1 + (next() % 9) as usize };
                let len = if j == 2 && next() % 2 == 0 { 1 } else { len };
                for d in 0..len {
                    let digit = if d == 0 && next() % 6 != 0 {
                        b'1' + (next() % 9) as u8
                    } else {
                        b'0' + (next() % 10) as u8
                    };
                    event.push(digit);
                }
                event.push(if odd && next() % 3 == 0 { b" .e-:x\xff"[(next() % 7) as usize] } else { sep });
            }
            let mut doc = event.clone();
            doc.extend_from_slice(&b",[1,2,3,4]".repeat(20));
            let window: &[u8; WINDOW_READ] = doc[..WINDOW_READ].try_into().unwrap();
            let fast = window_event(window);
            let general =
                compact_event(&doc, 0).map(|(e, next)| (e.id, u64::from(e.actor), e.kind, e.units, next));
            if let Some((id, actor, kind, units, next)) = fast {
                accepted += 1;
                // The general reader saturates indices (both are then out of range).
                let saturated = (id, actor.min(u64::from(u32::MAX)), kind.min(KIND_SATURATED), units, next);
                assert_eq!(Some(saturated), general, "{}", String::from_utf8_lossy(&event));
            } else if let Some((id, actor, kind, units, _)) = general {
                // Declined only with a number the window reader leaves to the general one.
                let digits = |v: u64| v.to_string().len();
                assert!(
                    digits(id) > 15 || digits(units) > 15 || digits(actor) > 15 || digits(kind) > 15,
                    "declined {}",
                    String::from_utf8_lossy(&event)
                );
            }
        }
        assert!(accepted > 10_000, "{accepted}");
    }

    #[test]
    fn digit_count_stops_at_the_first_non_digit() {
        for bytes in
            [*b"12345678", *b"1234/678", *b"123:5678", *b"\xff2345678", *b"12\xfa\xff5678", *b"0000000a"]
        {
            let expected = bytes.iter().take_while(|c| c.is_ascii_digit()).count() as u32;
            assert_eq!(digit_count(u64::from_le_bytes(bytes)), expected, "{bytes:?}");
        }
    }

    fn naive_actor_order(ids: &[String]) -> Result<Vec<String>, usize> {
        let mut seen = HashSet::new();
        if let Some(i) = ids.iter().position(|id| !seen.insert(id.clone())) {
            return Err(i);
        }
        let mut sorted = ids.to_vec();
        sorted.sort();
        Ok(sorted)
    }

    fn sorted_actors(ids: &[String]) -> Result<Vec<String>, usize> {
        let mut bytes = Vec::new();
        let mut ends = Vec::new();
        for id in ids {
            bytes.extend_from_slice(id.as_bytes());
            ends.push(bytes.len() as u32);
        }
        bytes.extend_from_slice(&[0; 16]);
        match sort_actors(&bytes, &ends) {
            Ok(a) => {
                let mut start = 0;
                let sorted: Vec<String> = a
                    .ends
                    .iter()
                    .map(|&end| {
                        let s = a.bytes[start..end as usize].to_owned();
                        start = end as usize;
                        s
                    })
                    .collect();
                for (i, &r) in a.rank.iter().enumerate() {
                    assert_eq!(sorted[r as usize], ids[i]);
                }
                Ok(sorted)
            }
            Err(e) => {
                assert_eq!(e.code(), Code::DuplicateActor);
                Err(e.details()["index"].as_u64().unwrap() as usize)
            }
        }
    }

    #[test]
    fn actor_sort_handles_long_shared_prefixes_and_prefixes_of_each_other() {
        let long = "p".repeat(12);
        let cases: Vec<Vec<String>> = vec![
            vec![
                format!("{long}x"),
                long.clone(),
                format!("{long}a"),
                format!("{long}{long}"),
                format!("{long}{long}a"),
            ],
            vec!["b".into(), "a".into(), "ab".into(), "ba".into()],
            vec!["zz".into(), long.clone(), format!("{long}b"), format!("{long}a")],
            vec![
                format!("{long}{long}{long}z"),
                format!("{long}{long}{long}"),
                format!("{long}{long}{long}a"),
            ],
            vec![format!("{long}{long}z"), format!("{long}q"), format!("{long}{long}z")],
            vec![long.clone(), "a".into(), long.clone()],
            vec!["x".repeat(128), "x".repeat(127), format!("{}y", "x".repeat(127))],
            vec![],
            vec!["solo".into()],
        ];
        for ids in cases {
            assert_eq!(sorted_actors(&ids), naive_actor_order(&ids), "{ids:?}");
        }
    }

    /// Runs `aggregate` with a document length that forces the dense matrix or the groups.
    fn aggregate_both(
        events: &[(u64, u32, u64, u64)],
        actor_count: usize,
        kind_count: usize,
    ) -> [(Vec<Usage>, Vec<u32>); 2] {
        let mut scanned = Events::default();
        for &(id, actor, kind, units) in events {
            scanned.push(Event { id, actor, kind, units });
        }
        let rank: Vec<u32> = (0..actor_count as u32).rev().collect();
        let cells_bytes = actor_count * kind_count * size_of::<u64>();
        assert!(cells_bytes > DENSE_BYTES_MIN, "too small to force the groups");
        let dense = aggregate(
            Events {
                ids: scanned.ids.clone(),
                actors: scanned.actors.clone(),
                packed: scanned.packed.clone(),
            },
            &rank,
            kind_count,
            cells_bytes,
        )
        .unwrap();
        let grouped = aggregate(scanned, &rank, kind_count, 0).unwrap();
        [dense, grouped]
    }

    #[test]
    fn dense_and_grouped_sums_agree() {
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let (actor_count, kind_count) = (300, 40);
        let events: Vec<(u64, u32, u64, u64)> = (0..20_000)
            .map(|i| {
                let units = if next() % 64 == 0 { 0 } else { next() & INT_MAX >> (next() % 50) };
                (i, (next() % actor_count) as u32, next() % kind_count, units)
            })
            .collect();
        let [dense, grouped] = aggregate_both(&events, actor_count as usize, kind_count as usize);
        assert_eq!(dense, grouped);
        assert_eq!(dense.1.len(), actor_count as usize);
        // Large sums: the dense matrix overflows a u64 and falls back to the groups.
        let big: Vec<(u64, u32, u64, u64)> = (0..4096).map(|i| (i, 7, 3, INT_MAX)).collect();
        let [dense, grouped] = aggregate_both(&big, actor_count as usize, kind_count as usize);
        assert_eq!(dense, grouped);
        let r = actor_count as usize - 1 - 7;
        let start = if r == 0 { 0 } else { dense.1[r - 1] as usize };
        assert_eq!(
            &dense.0[start..dense.1[r] as usize],
            [Usage { kind: 3, units: 4096 * u128::from(INT_MAX) }]
        );
    }

    #[test]
    fn first_repeat_dense_and_sparse() {
        assert_eq!(first_repeat(&[]), None);
        assert_eq!(first_repeat(&[3]), None);
        assert_eq!(first_repeat(&[3, 1, 2, 0]), None);
        assert_eq!(first_repeat(&[3, 1, 3, 1]), Some(2));
        assert_eq!(first_repeat(&[0, INT_MAX, 5, 6]), None);
        assert_eq!(first_repeat(&[0, INT_MAX, 6, INT_MAX, 6]), Some(3));
        let many: Vec<u64> = (0..10_000u64).map(|i| i * 7919 % 10_007).collect();
        assert_eq!(first_repeat(&many), None);
    }

    #[test]
    fn first_repeat_in_a_dense_bitmap_is_found_after_the_bit_count() {
        let mut ids: Vec<u64> = (0..10_000u64).map(|i| i * 7919 % 10_007).collect();
        ids[9_000] = ids[100];
        assert_eq!(first_repeat(&ids), Some(9_000));
        ids[8_000] = ids[9_999];
        assert_eq!(first_repeat(&ids), Some(9_000));
        ids[8_500] = ids[8_499];
        assert_eq!(first_repeat(&ids), Some(8_500));
    }

    #[test]
    fn usage_sums_exceed_u64_and_zero_units_still_count() {
        let events: Vec<String> = (0..3000).map(|i| format!("[{i}, 0, 1, {INT_MAX}]")).collect();
        let doc = event_doc(&format!("[{}, [5000, 1, 0, 0]]", events.join(",")));
        let inputs = parse_str(&doc).unwrap();
        assert_eq!(usage_of(&inputs, "a"), [(1, 3000 * u128::from(INT_MAX))]);
        assert!(3000 * u128::from(INT_MAX) > u128::from(u64::MAX));
        assert_eq!(usage_of(&inputs, "b"), [(0, 0)]);
        assert_eq!(inputs.event_count(), 3001);
    }

    #[test]
    fn actors_without_events_and_empty_events() {
        let inputs = parse_str(&event_doc("[ ]")).unwrap();
        assert_eq!(inputs.actor_count(), 2);
        assert_eq!(inputs.event_count(), 0);
        assert!(inputs.usage(0).is_empty() && inputs.usage(1).is_empty());
        let inputs = parse_str(&with("actors", "[]").replace("[[1, 0, 0, 5], [2, 1, 1, 6]]", "[]")).unwrap();
        assert_eq!(inputs.actor_count(), 0);
    }

    #[test]
    fn limits_are_enforced_with_the_field_named() {
        let limits = Limits { actors_max: 2, events_max: 2 };
        assert!(parse(with("actors", r#"["a", "b"]"#).as_bytes(), &limits).is_ok());
        let err = parse(with("actors", r#"["a", "b", "c"]"#).as_bytes(), &limits).unwrap_err();
        assert_eq!((err.code(), err.details()["field"].as_str()), (Code::LimitExceeded, Some("actors")));
        let err = parse(event_doc("[[1,0,0,1],[2,0,0,1],[3,0,0,1]]").as_bytes(), &limits).unwrap_err();
        assert_eq!((err.code(), err.details()["field"].as_str()), (Code::LimitExceeded, Some("events")));
        let err = parse(format!("{} x", event_doc("[[1,0,0,1],[2,0,0,1],[3,0,0,1]]")).as_bytes(), &limits)
            .unwrap_err();
        assert_eq!(err.code(), Code::MalformedJson);
    }

    /// Valid, then mutated documents: never a panic, and `malformed_json` exactly when
    /// serde_json does not accept the bytes as JSON.
    fn mutated(doc: &str, edits: &[(usize, u8, u8)]) -> Vec<u8> {
        const ALPHABET: &[u8] = b"[]{}\",:0123456789-.eE \n\\abtrfnlsx\xff\xc3";
        let mut bytes = doc.as_bytes().to_vec();
        for &(at, op, byte) in edits {
            let at = at % (bytes.len() + 1);
            let byte = ALPHABET[usize::from(byte) % ALPHABET.len()];
            match op % 3 {
                0 => bytes.insert(at, byte),
                1 if at < bytes.len() => {
                    bytes.remove(at);
                }
                _ if at < bytes.len() => bytes[at] = byte,
                _ => {}
            }
        }
        bytes
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn actor_sort_matches_a_naive_sort(
            ids in proptest::collection::vec("(p{12}|p{24}|q)?[ab]{0,3}(p{12})?[ab]{0,2}", 0..40)
        ) {
            let ids: Vec<String> = ids.into_iter().filter(|s| !s.is_empty()).collect();
            prop_assert_eq!(sorted_actors(&ids), naive_actor_order(&ids));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn mutations_never_panic_and_agree_with_serde_json_on_syntax(
            edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..4)
        ) {
            let bytes = mutated(BASIC, &edits);
            let ours = parse(&bytes, &Limits::UNBOUNDED);
            // serde_json does not check UTF-8 inside strings it ignores: check it first.
            let json = std::str::from_utf8(&bytes).is_ok()
                && serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_ok();
            let malformed = matches!(&ours, Err(e) if e.code() == Code::MalformedJson);
            prop_assert_eq!(malformed, !json, "{}", String::from_utf8_lossy(&bytes));
            if let Err(e) = &ours
                && e.code() != Code::MalformedJson
            {
                prop_assert!(e.details().contains_key("field") || e.code() == Code::Schema);
            }
        }
    }
}
