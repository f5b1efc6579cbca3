//! The append-only journal of applied state changes, so that a restarted simulator keeps
//! what it acknowledged (`--journal FILE`).
//!
//! Format: UTF-8 JSON lines, one line per request that changed the state, written with one
//! `write` and made durable (`fdatasync`) before the request is answered (field order inside
//! a line is not significant; the simulator writes them sorted):
//!
//! ```text
//! {"op":"run","tenant":"default","epoch":"2026-11-29","run_id":"b3:…","manifest_digest":"b3:…","payout_total_minor":"600","payees":2}
//! {"op":"intents","intents":[{"idempotency_key":"b3:…","tenant":"default","epoch":"2026-11-29","actor":"acct:alice","amount_minor":"400","run_id":"b3:…","manifest_digest":"b3:…"},…]}
//! ```
//!
//! An `intents` line holds only the intents that request accepted (dups and conflicts change
//! nothing and are not journaled), so a request is replayed whole or not at all. At start the
//! file is replayed in order; a last line cut short by a crash (no final newline, or not
//! parseable) is ignored and cut off the file; damage anywhere else refuses to start.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::state::{Ledger, Registration};
use super::wire::{Intent, RunRegistration, parse_intent, parse_run};
use super::wire::{is_valid_tenant, parse_minor};
use crate::is_valid_epoch;

/// One journaled state change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A run registered for `(tenant, epoch)`.
    Run {
        /// The tenant.
        tenant: String,
        /// The epoch.
        epoch: String,
        /// The registration.
        run: RunRegistration,
    },
    /// The intents one request accepted, in request order.
    Intents(Vec<Intent>),
}

impl Record {
    /// The journal line, newline included.
    pub fn to_line(&self) -> Vec<u8> {
        let v = match self {
            Record::Run { tenant, epoch, run } => json!({
                "op": "run",
                "tenant": tenant,
                "epoch": epoch,
                "run_id": run.run_id,
                "manifest_digest": run.manifest_digest,
                "payout_total_minor": run.payout_total_minor,
                "payees": run.payees,
            }),
            Record::Intents(list) => json!({
                "op": "intents",
                "intents": list.iter().map(Intent::to_json).collect::<Vec<_>>(),
            }),
        };
        let mut line = serde_json::to_vec(&v).expect("JSON values serialize");
        line.push(b'\n');
        line
    }

    /// Parses one journal line (without its newline).
    pub fn from_line(line: &[u8]) -> Result<Record, String> {
        let v: Value = serde_json::from_slice(line).map_err(|e| format!("not JSON: {e}"))?;
        let mut obj = v.as_object().cloned().ok_or("not a JSON object")?;
        match obj.remove("op").as_ref().and_then(Value::as_str) {
            Some("run") => {
                let field = |obj: &mut serde_json::Map<String, Value>, k: &str| {
                    obj.remove(k).and_then(|v| v.as_str().map(str::to_owned)).ok_or(format!("`{k}` missing"))
                };
                let tenant = field(&mut obj, "tenant")?;
                let epoch = field(&mut obj, "epoch")?;
                if !is_valid_tenant(&tenant) || !is_valid_epoch(&epoch) {
                    return Err("invalid tenant or epoch".into());
                }
                let run = parse_run(Value::Object(obj).to_string().as_bytes()).map_err(|e| e.message)?;
                debug_assert!(parse_minor(&run.payout_total_minor).is_some());
                Ok(Record::Run { tenant, epoch, run })
            }
            Some("intents") if obj.len() == 1 => {
                let list = obj["intents"].as_array().ok_or("`intents` is not an array")?;
                let intents =
                    list.iter().map(parse_intent).collect::<Result<Vec<_>, _>>().map_err(|e| e.message)?;
                Ok(Record::Intents(intents))
            }
            _ => Err("unknown record".into()),
        }
    }

    /// Applies the record to `ledger`.
    ///
    /// # Errors
    /// When it contradicts the state (a journal that was not written by this simulator).
    pub fn apply(&self, ledger: &mut Ledger) -> Result<(), String> {
        match self {
            Record::Run { tenant, epoch, run } => match ledger.check_run(tenant, epoch, run) {
                Registration::New => {
                    ledger.insert_run(tenant, epoch, run.clone());
                    Ok(())
                }
                _ => Err(format!("epoch {tenant}/{epoch} registered twice")),
            },
            Record::Intents(list) => ledger.insert_intents(list),
        }
    }
}

/// What opening the journal found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Replay {
    /// Records replayed.
    pub records: usize,
    /// Bytes of a torn last line that were ignored and cut off (0 if none).
    pub torn_bytes: u64,
}

/// The open journal file.
#[derive(Debug)]
pub struct Journal {
    file: File,
    len: u64,
    path: PathBuf,
}

impl Journal {
    /// Opens (or creates) the journal at `path` and replays it into `ledger`.
    ///
    /// # Errors
    /// When the file cannot be read or written, or is damaged before its last line.
    pub fn open(path: &Path, ledger: &mut Ledger) -> Result<(Journal, Replay), String> {
        let ctx = |e: io::Error| format!("journal {}: {e}", path.display());
        let existed = path.exists();
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(path).map_err(ctx)?;
        if !existed {
            // Make the new directory entry durable too.
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                File::open(dir).and_then(|d| d.sync_all()).map_err(ctx)?;
            }
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(ctx)?;

        let mut replay = Replay::default();
        let mut good_end = 0usize;
        let mut rest = &bytes[..];
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            let line = &rest[..nl];
            let is_last = nl + 1 == rest.len();
            match Record::from_line(line) {
                Ok(rec) => {
                    rec.apply(ledger).map_err(|e| {
                        format!("journal {}: line {}: {e}", path.display(), replay.records + 1)
                    })?;
                    replay.records += 1;
                    good_end += nl + 1;
                }
                Err(_) if is_last => break,
                Err(e) => {
                    return Err(format!("journal {}: line {}: {e}", path.display(), replay.records + 1));
                }
            }
            rest = &rest[nl + 1..];
        }
        let good_end = good_end as u64;
        let len = bytes.len() as u64;
        if good_end < len {
            replay.torn_bytes = len - good_end;
            file.set_len(good_end).and_then(|()| file.sync_data()).map_err(ctx)?;
        }
        Ok((Journal { file, len: good_end, path: path.to_owned() }, replay))
    }

    /// Appends one record and makes it durable before returning.
    ///
    /// # Errors
    /// On a write or sync failure; the file is then cut back to its previous length (best
    /// effort) and the caller must not apply the record.
    pub fn append(&mut self, record: &Record) -> io::Result<()> {
        let line = record.to_line();
        let res = self.file.write_all(&line).and_then(|()| self.file.sync_data());
        match res {
            Ok(()) => {
                self.len += line.len() as u64;
                Ok(())
            }
            Err(e) => {
                let _ = self.file.set_len(self.len);
                Err(e)
            }
        }
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use rewarder_core::commit::intent_key;

    use super::*;

    fn run() -> RunRegistration {
        RunRegistration {
            run_id: format!("b3:{}", "a".repeat(64)),
            manifest_digest: format!("b3:{}", "d".repeat(64)),
            payout_total_minor: "12".into(),
            payees: 2,
        }
    }

    fn intent(actor: &str, amount: u64) -> Intent {
        let r = run();
        Intent {
            idempotency_key: intent_key("t", "e", actor),
            tenant: "t".into(),
            epoch: "e".into(),
            actor: actor.into(),
            amount_minor: amount,
            run_id: r.run_id,
            manifest_digest: r.manifest_digest,
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ledger-sim-journal-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("journal.jsonl")
    }

    #[test]
    fn lines_round_trip() {
        for rec in [
            Record::Run { tenant: "t".into(), epoch: "e".into(), run: run() },
            Record::Intents(vec![intent("x", 5), intent("y", 7)]),
        ] {
            let line = rec.to_line();
            assert_eq!(line.last(), Some(&b'\n'));
            assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
            assert_eq!(Record::from_line(&line[..line.len() - 1]).unwrap(), rec);
        }
        assert!(Record::from_line(br#"{"op":"nope"}"#).is_err());
    }

    #[test]
    fn replay_restores_state_and_cuts_a_torn_tail() {
        let path = scratch("torn");
        {
            let mut l = Ledger::default();
            let (mut j, replay) = Journal::open(&path, &mut l).unwrap();
            assert_eq!(replay, Replay::default());
            j.append(&Record::Run { tenant: "t".into(), epoch: "e".into(), run: run() }).unwrap();
            j.append(&Record::Intents(vec![intent("x", 5), intent("y", 7)])).unwrap();
        }
        let whole = std::fs::read(&path).unwrap();
        // A crash in the middle of the next line.
        let torn = Record::Intents(vec![intent("z", 1)]).to_line();
        let mut bytes = whole.clone();
        bytes.extend_from_slice(&torn[..torn.len() / 2]);
        std::fs::write(&path, &bytes).unwrap();

        let mut l = Ledger::default();
        let (mut j, replay) = Journal::open(&path, &mut l).unwrap();
        assert_eq!(replay, Replay { records: 2, torn_bytes: (torn.len() / 2) as u64 });
        assert_eq!(l.key_count(), 2);
        assert_eq!(std::fs::read(&path).unwrap(), whole, "the torn tail is cut off");
        j.append(&Record::Intents(vec![intent("z", 1)])).unwrap();
        drop(j);

        let mut l = Ledger::default();
        let (_, replay) = Journal::open(&path, &mut l).unwrap();
        assert_eq!(replay, Replay { records: 3, torn_bytes: 0 });
        assert_eq!(l.key_count(), 3);
        assert_eq!(l.epochs_json()[0]["total_minor"], "13");
    }

    #[test]
    fn damage_before_the_last_line_refuses_to_start() {
        let path = scratch("damaged");
        let mut bytes = Record::Run { tenant: "t".into(), epoch: "e".into(), run: run() }.to_line();
        bytes.extend_from_slice(b"garbage\n");
        bytes.extend_from_slice(&Record::Intents(vec![intent("x", 5)]).to_line());
        std::fs::write(&path, &bytes).unwrap();
        let err = Journal::open(&path, &mut Ledger::default()).unwrap_err();
        assert!(err.contains("line 2"), "{err}");

        // A complete but unparseable last line is a torn write too.
        let run_line = Record::Run { tenant: "t".into(), epoch: "e".into(), run: run() }.to_line();
        std::fs::write(&path, [run_line, b"garbage\n".to_vec()].concat()).unwrap();
        let (_, replay) = Journal::open(&path, &mut Ledger::default()).unwrap();
        assert_eq!(replay.records, 1);

        // A contradiction (an intent of an unregistered run) is damage, not a torn write.
        std::fs::write(&path, [Record::Intents(vec![intent("x", 5)]).to_line(), b"{}\n".to_vec()].concat())
            .unwrap();
        assert!(Journal::open(&path, &mut Ledger::default()).is_err());
    }
}
