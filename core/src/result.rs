//! The compute result body of API.md §1.2: rendered straight from a [`Run`] (no intermediate
//! per-payee strings), and parsed back for verification.

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

use std::sync::Arc;

use crate::manifest::Manifest;
use crate::run::{Allocation, Run};
use crate::sign::{Signature, Signatures};

/// How the run's payouts reached the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LedgerStatus {
    /// Every intent was accepted (or was a duplicate of an accepted one).
    Emitted,
    /// Nothing was sent: a dry run or a compute-only node.
    DryRun,
    /// Some intents wait in the quarantine queue.
    Quarantined,
}

/// The `ledger` object of a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerReport {
    /// Where the run stands.
    pub status: LedgerStatus,
    /// Intents the ledger accepted.
    pub accepted: u64,
    /// Intents the ledger had already seen (retries).
    pub dup: u64,
    /// Intents still queued.
    pub pending: u64,
}

impl LedgerReport {
    /// The report of a run that sends nothing.
    pub const DRY_RUN: LedgerReport =
        LedgerReport { status: LedgerStatus::DryRun, accepted: 0, dup: 0, pending: 0 };
}

/// Everything a compute answer says besides the run and its signatures.
#[derive(Debug, Clone, Copy)]
pub struct ResultMeta<'a> {
    /// Ledger progress.
    pub ledger: LedgerReport,
    /// Time spent computing, in milliseconds.
    pub compute_ms: f64,
    /// The `allocations` array as [`render_allocations`] wrote it; `None` omits the member
    /// (`?allocations=false`).
    pub allocations: Option<&'a [u8]>,
    /// Whether the node keeps its quarantine queue durably (`STATE_PATH`): written as
    /// `ledger.durable` on every answer but a dry run's.
    pub durable: bool,
}

/// Renders the API.md §1.2 body in one buffer.
pub fn render(run: &Run, signatures: &Signatures, meta: &ResultMeta<'_>) -> Vec<u8> {
    let mut out = render_before_rows(run, signatures, meta.allocations.is_some());
    if let Some(allocations) = meta.allocations {
        out.extend_from_slice(allocations);
    }
    write_after_rows(&mut out, meta);
    out
}

/// `body` with `rows` put in at `at`, in one buffer of the exact size.
pub(crate) fn spliced(body: &[u8], at: usize, rows: &Rows) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + rows.len());
    out.extend_from_slice(&body[..at]);
    for piece in rows.pieces() {
        out.extend_from_slice(piece);
    }
    out.extend_from_slice(&body[at..]);
    out
}

/// The API.md §1.2 body up to its `allocations` rows: `manifest`, `manifest_digest`,
/// `signatures`, and the `allocations` key when `rows`. A host that keeps the rows writes them
/// from where they are kept, then what [`write_after_rows`] adds, so an answer never copies
/// its bulk.
pub(crate) fn render_before_rows(run: &Run, signatures: &Signatures, rows: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(2560);
    write_manifest(&mut out, run);
    out.extend_from_slice(b",\"signatures\":");
    write_json(&mut out, &SignaturesView(signatures));
    if rows {
        out.extend_from_slice(b",\"allocations\":");
    }
    out
}

/// The rest of a §1.2 body after its rows (or after `signatures` without them): `ledger`,
/// `timing`, and the closing brace. [`ResultMeta::allocations`] is not read.
pub(crate) fn write_after_rows(out: &mut Vec<u8>, meta: &ResultMeta<'_>) {
    out.extend_from_slice(b",\"ledger\":");
    let durable = (meta.ledger.status != LedgerStatus::DryRun).then_some(meta.durable);
    write_json(out, &LedgerJson { report: &meta.ledger, durable });
    out.extend_from_slice(b",\"timing\":");
    write_json(out, &Timing { compute_ms: meta.compute_ms });
    out.push(b'}');
}

/// The members of a §1.2 body that describe the run itself, in their order — `manifest`,
/// `manifest_digest`, `allocations` — without `signatures`, `ledger` or `timing`: an unsigned
/// run computed where nothing is sent or timed (the FFI's `compute_json`). The same bytes
/// for the same documents and tenant on every device.
pub fn render_unsigned(run: &Run) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024 + run.outcome().payees.len() * ALLOCATION_BYTES_TYPICAL);
    write_manifest(&mut out, run);
    out.extend_from_slice(b",\"allocations\":");
    write_allocations(&mut out, run);
    out.push(b'}');
    out
}

/// Opens a body with the run's `manifest` and `manifest_digest`, the first members of both.
fn write_manifest(out: &mut Vec<u8>, run: &Run) {
    out.extend_from_slice(b"{\"manifest\":");
    write_json(out, run.manifest());
    out.extend_from_slice(b",\"manifest_digest\":");
    write_json(out, &run.manifest_digest());
}

/// The `allocations` array of a run: the bulk of a full answer (about 80 bytes a payee), and
/// the same bytes on every answer of the run, so a node renders it once and keeps it.
pub fn render_allocations(run: &Run) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + run.outcome().payees.len() * ALLOCATION_BYTES_TYPICAL);
    write_allocations(&mut out, run);
    out
}

/// Bytes of one rendered allocation with a short id and large amounts: a capacity hint.
const ALLOCATION_BYTES_TYPICAL: usize = 80;

/// Rows in the first piece of [`render_rows`]; each later piece has twice as many, up to
/// [`PIECE_ROWS_MAX`]. A small first piece lets a host start sending early; large later ones
/// keep the pieces few (each is a message to the host's I/O thread).
const PIECE_ROWS_FIRST: usize = 4096;
/// Rows in a piece at most (about 650 KB).
const PIECE_ROWS_MAX: usize = 8192;

/// A rendered `allocations` array, kept in the pieces it was rendered in: a host sends the
/// pieces of a new run while the later ones are still being rendered, and every later answer
/// writes them from where they are kept. The array's bytes are the pieces in order.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rows {
    pieces: Vec<Arc<Vec<u8>>>,
    len: usize,
}

impl Rows {
    /// The pieces, in order.
    pub fn pieces(&self) -> &[Arc<Vec<u8>>] {
        &self.pieces
    }

    /// Bytes in all pieces.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no bytes (never, for a rendered array: it has its brackets).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl FromIterator<Arc<Vec<u8>>> for Rows {
    fn from_iter<I: IntoIterator<Item = Arc<Vec<u8>>>>(pieces: I) -> Rows {
        let pieces: Vec<_> = pieces.into_iter().collect();
        let len = pieces.iter().map(|p| p.len()).sum();
        Rows { pieces, len }
    }
}

/// The `allocations` array of a run as [`render_allocations`] writes it, in pieces of growing
/// size: `each` sees every piece as soon as it is rendered.
pub fn render_rows(run: &Run, mut each: impl FnMut(&Arc<Vec<u8>>)) -> Rows {
    let plain = plain_ids(run);
    let mut writer = RowWriter::default();
    let mut rows = run.allocations().enumerate().peekable();
    let mut out = vec![b'['];
    let mut piece_rows = PIECE_ROWS_FIRST;
    let mut pieces = Vec::new();
    loop {
        out.reserve(piece_rows * ALLOCATION_BYTES_TYPICAL + 1);
        for (i, a) in rows.by_ref().take(piece_rows) {
            writer.row(&mut out, i, &a, plain);
        }
        let last = rows.peek().is_none();
        if last {
            out.push(b']');
        }
        let piece = Arc::new(std::mem::take(&mut out));
        each(&piece);
        pieces.push(piece);
        if last {
            return pieces.into_iter().collect();
        }
        piece_rows = (piece_rows * 2).min(PIECE_ROWS_MAX);
    }
}

fn write_json<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    // Serializing plain strings and integers into a Vec cannot fail.
    serde_json::to_writer(out, value).expect("serializing a result into memory");
}

/// The `ledger` object: the report, then `durable` unless the run was dry.
#[derive(Serialize)]
struct LedgerJson<'a> {
    #[serde(flatten)]
    report: &'a LedgerReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    durable: Option<bool>,
}

#[derive(Serialize)]
struct Timing {
    compute_ms: f64,
}

struct SignaturesView<'a>(&'a Signatures);

impl Serialize for SignaturesView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("ed25519", &SignatureJson::from(&self.0.ed25519))?;
        if let Some(pq) = &self.0.ml_dsa_65 {
            m.serialize_entry("ml_dsa_65", &SignatureJson::from(pq))?;
        }
        m.end()
    }
}

/// The allocations list, written straight into the answer: it is most of an answer's bytes
/// (~80 per payee), and serde's generic path spent more on its per-field calls than on the
/// bytes. The output is what serde_json would write; `allocation_rows_equal_serde_json`
/// pins it.
fn write_allocations(out: &mut Vec<u8>, run: &Run) {
    let plain = plain_ids(run);
    let mut writer = RowWriter::default();
    out.push(b'[');
    for (i, a) in run.allocations().enumerate() {
        writer.row(out, i, &a, plain);
    }
    out.push(b']');
}

/// Whether every id can be copied between its quotes without a look. Ids are printable ASCII
/// (CALCULUS.md §1.1): unless one holds `"` or `\` (one pass over all of them, which
/// vectorizes), none needs escaping.
fn plain_ids(run: &Run) -> bool {
    !run.inputs().actor_ids_contain(b'"', b'\\')
}

/// Writes allocation rows, with its number buffers kept between rows.
#[derive(Default)]
struct RowWriter {
    amount: itoa::Buffer,
    score: itoa::Buffer,
}

impl RowWriter {
    /// Row `i` of the array (a comma before every row but the first).
    fn row(&mut self, out: &mut Vec<u8>, i: usize, a: &Allocation<'_>, plain: bool) {
        if i > 0 {
            out.push(b',');
        }
        if plain {
            out.extend_from_slice(b"{\"actor\":\"");
            out.extend_from_slice(a.actor.as_bytes());
            out.extend_from_slice(b"\",\"amount_minor\":\"");
        } else {
            out.extend_from_slice(b"{\"actor\":");
            write_str(out, a.actor);
            out.extend_from_slice(b",\"amount_minor\":\"");
        }
        out.extend_from_slice(self.amount.format(a.amount).as_bytes());
        out.extend_from_slice(b"\",\"score\":\"");
        out.extend_from_slice(self.score.format(a.score).as_bytes());
        out.extend_from_slice(b"\"}");
    }
}

/// A JSON string. Payee ids are printable ASCII (CALCULUS.md §1.1), where only `"` and `\`
/// need escaping, so an id without them is copied whole; anything else goes through serde_json.
fn write_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        write_json(out, s);
    }
}

/// A signature as it travels: `{"public_key", "signature", "key_id"}`, lowercase hex. The
/// key id is outside the digest (nothing signs it); a body without one still parses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureJson {
    /// Hex of the public key.
    pub public_key: String,
    /// Hex of the signature.
    pub signature: String,
    /// The key id of the public key (CALCULUS.md §4.6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

impl From<&Signature> for SignatureJson {
    fn from(s: &Signature) -> Self {
        SignatureJson {
            public_key: s.public_key.clone(),
            signature: s.signature.clone(),
            key_id: Some(s.key_id.clone()),
        }
    }
}

/// The `signatures` object as parsed back.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SignaturesJson {
    /// Ed25519.
    pub ed25519: SignatureJson,
    /// ML-DSA-65, when the node requires PQ.
    pub ml_dsa_65: Option<SignatureJson>,
}

/// One allocation as parsed back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllocationJson {
    /// The actor id.
    pub actor: String,
    /// Amount, decimal.
    pub amount_minor: String,
    /// Score, decimal.
    pub score: String,
}

/// A compute result as parsed back (what a verifier receives).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ResultJson {
    /// The manifest.
    pub manifest: Manifest,
    /// Its digest.
    pub manifest_digest: String,
    /// Its signatures.
    pub signatures: SignaturesJson,
    /// The allocations, when listed.
    pub allocations: Option<Vec<AllocationJson>>,
    /// Ledger progress.
    pub ledger: LedgerReport,
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{Inputs, Limits, Policy};

    #[test]
    fn allocation_rows_equal_serde_json() {
        // Ids that need escaping, then ids that are copied whole (the writer's two paths).
        rows_equal_serde_json(&["acct:a", "q\"uote", "back\\slash", "~!#$%&'()*+,-./:;<=>?@[]^_`{|}", "z"]);
        rows_equal_serde_json(&["acct:a", "~!#$%&'()*+,-./:;<=>?@[]^_`{|}", "z"]);
        // A quote past the first 64 bytes of ids (the scan's block size).
        let long = "a".repeat(120);
        rows_equal_serde_json(&[&long, "b", "z\"q"]);
        // An id of the longest length, copied whole.
        rows_equal_serde_json(&[&"m".repeat(128), "b"]);
    }

    fn rows_equal_serde_json(ids: &[&str]) {
        // The last actor's score is above 2^64 (2^53 - 1 units at weight 10^6): the u128 digits.
        let run =
            run_of(ids, |i| if i + 1 == ids.len() { 9_007_199_254_740_991 } else { 1000 + 37 * i as u64 });
        let expected: Vec<AllocationJson> = run
            .allocations()
            .map(|a| AllocationJson {
                actor: a.actor.to_owned(),
                amount_minor: a.amount.to_string(),
                score: a.score.to_string(),
            })
            .collect();
        assert_eq!(expected.len(), ids.len());
        assert!(run.allocations().any(|a| a.score > u128::from(u64::MAX)), "a score above 2^64");
        let mut ours = Vec::new();
        write_allocations(&mut ours, &run);
        assert_eq!(String::from_utf8(ours).unwrap(), serde_json::to_string(&expected).unwrap());
    }

    #[test]
    fn rows_in_pieces_are_the_array_in_one_buffer() {
        // Payee counts around the piece sizes: one piece, exactly one, one row more, several.
        for payees in [1, PIECE_ROWS_FIRST, PIECE_ROWS_FIRST + 1, 3 * PIECE_ROWS_FIRST + 7, 40_000] {
            let ids: Vec<String> = (0..payees).map(|i| format!("acct:{i:06}")).collect();
            let run = run_of(&ids, |i| 1 + i as u64 % 97);
            let mut seen = Vec::new();
            let rows = render_rows(&run, |piece| seen.push(Arc::clone(piece)));
            let whole = render_allocations(&run);
            assert_eq!(spliced(&[], 0, &rows), whole, "{payees} payees");
            assert_eq!(rows.len(), whole.len());
            assert_eq!(rows.pieces(), &seen[..], "each piece seen once, in order");
            let rows_per_piece: Vec<usize> =
                rows.pieces().iter().map(|p| p.split(|b| *b == b'{').count() - 1).collect();
            assert_eq!(rows_per_piece.iter().sum::<usize>(), payees);
            // Pieces double from the first size up to the largest; only the last is shorter.
            let mut size = PIECE_ROWS_FIRST;
            for (i, n) in rows_per_piece.iter().enumerate() {
                if i + 1 < rows_per_piece.len() {
                    assert_eq!(*n, size, "{payees} payees: piece {i}");
                } else {
                    assert!(*n <= size && *n > 0, "{payees} payees: last piece {n}");
                }
                size = (size * 2).min(PIECE_ROWS_MAX);
            }
        }
    }

    /// A run of actors `ids`, the `i`th with `units(i)` units of one kind, all payees of a pool
    /// of 2^64 - 1.
    fn run_of<S: Serialize>(ids: &[S], units: impl Fn(usize) -> u64) -> Run {
        let events: Vec<String> =
            (0..ids.len()).map(|i| format!("[{}, {i}, 0, {}]", i + 1, units(i))).collect();
        let inputs = format!(
            r#"{{"schema":"rewarder.inputs.v1","epoch":"e","pool_minor":"18446744073709551615","kinds":["k"],"actors":{},"events":[{}]}}"#,
            serde_json::to_string(ids).unwrap(),
            events.join(",")
        );
        let policy = r#"{"schema":"rewarder.policy.v1","policy_id":"p","weights":{"k":1000000},"min_payout_minor":"0"}"#;
        let inputs = Arc::new(Inputs::parse(inputs.as_bytes(), &Limits::UNBOUNDED).unwrap());
        Run::compute(&inputs, &Policy::parse(policy.as_bytes()).unwrap(), "t").unwrap()
    }

    #[test]
    fn strings_equal_serde_json() {
        for s in ["", "plain", "a\"b", "a\\b", "tab\there", "nl\n", "\u{7f}", "\u{1}", "é", "\u{2028}"] {
            let mut ours = Vec::new();
            write_str(&mut ours, s);
            assert_eq!(ours, serde_json::to_vec(s).unwrap(), "{s:?}");
        }
    }
}
