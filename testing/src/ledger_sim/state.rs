//! The simulated ledger's state and the rules of API.md §4: which run holds which epoch, and
//! which intent keys have been accepted with which payload.
//!
//! Every operation is split in a read-only *check* (which decides the answer) and a *commit*
//! (which applies it), so that the caller can journal between the two and a failure before
//! the commit leaves the state exactly as it was.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{Value, json};

use super::wire::{Intent, RunRegistration};

/// What a run registration finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    /// The epoch is free: registering takes it (`201`).
    New,
    /// The same run already holds the epoch, with the same manifest (`200`).
    Same,
    /// Another run holds the epoch (`409 epoch_conflict`).
    HeldBy(String),
    /// The same `run_id` holds the epoch with another manifest digest, total or payee count:
    /// a client defect, refused (`409 run_mismatch`).
    Mismatch(RunRegistration),
}

/// The answer for one intent, as in `{"result": …}`: the node's own type, so the simulator and
/// the node read the same three words.
pub use rewarder_core::service::Verdict;

/// Why a whole `POST /v1/intents` is refused (nothing applied, `409`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Intent `index` names an epoch that no run has registered (`run_not_registered`):
    /// the client skipped step 1.
    NotRegistered {
        /// Position in the request.
        index: usize,
    },
    /// Intent `index` names a run or manifest digest other than the one holding its epoch
    /// (`epoch_conflict`): the client went on after a `409`.
    WrongRun {
        /// Position in the request.
        index: usize,
        /// The run that holds the epoch.
        held_by: String,
    },
}

/// The decision for one `POST /v1/intents`: a verdict per intent in request order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// One verdict per intent, in request order.
    pub verdicts: Vec<Verdict>,
}

impl Plan {
    /// The intents this plan accepts, in request order.
    pub fn accepted<'a>(&'a self, intents: &'a [Intent]) -> impl Iterator<Item = &'a Intent> + 'a {
        intents.iter().zip(&self.verdicts).filter(|(_, v)| **v == Verdict::Accepted).map(|(i, _)| i)
    }
}

/// One registered epoch and what has been accepted for it.
#[derive(Debug, Clone)]
struct Epoch {
    run: RunRegistration,
    total_minor: u128,
    intents: u64,
}

/// The ledger: registered epochs per `(tenant, epoch)` and accepted intents per key.
#[derive(Debug, Default)]
pub struct Ledger {
    epochs: BTreeMap<(String, String), Epoch>,
    keys: HashMap<String, Intent>,
}

impl Ledger {
    /// What registering `run` for `(tenant, epoch)` would do (nothing changes).
    pub fn check_run(&self, tenant: &str, epoch: &str, run: &RunRegistration) -> Registration {
        match self.epochs.get(&(tenant.to_owned(), epoch.to_owned())) {
            None => Registration::New,
            Some(e) if e.run == *run => Registration::Same,
            Some(e) if e.run.run_id == run.run_id => Registration::Mismatch(e.run.clone()),
            Some(e) => Registration::HeldBy(e.run.run_id.clone()),
        }
    }

    /// Registers `run` for `(tenant, epoch)`; the caller has checked [`Registration::New`].
    pub fn insert_run(&mut self, tenant: &str, epoch: &str, run: RunRegistration) {
        let prev = self
            .epochs
            .insert((tenant.to_owned(), epoch.to_owned()), Epoch { run, total_minor: 0, intents: 0 });
        debug_assert!(prev.is_none(), "insert_run over a registered epoch");
    }

    /// The verdicts for a batch, in order, as if it were applied intent by intent (a key
    /// repeated inside the batch sees its earlier occurrence); nothing changes.
    pub fn plan(&self, intents: &[Intent]) -> Result<Plan, Refusal> {
        for (index, i) in intents.iter().enumerate() {
            match self.epochs.get(&(i.tenant.clone(), i.epoch.clone())) {
                None => return Err(Refusal::NotRegistered { index }),
                Some(e) if e.run.run_id != i.run_id || e.run.manifest_digest != i.manifest_digest => {
                    return Err(Refusal::WrongRun { index, held_by: e.run.run_id.clone() });
                }
                Some(_) => {}
            }
        }
        let mut batch: HashMap<&str, &Intent> = HashMap::new();
        let verdicts = intents
            .iter()
            .map(|i| {
                match self
                    .keys
                    .get(&i.idempotency_key)
                    .or_else(|| batch.get(i.idempotency_key.as_str()).copied())
                {
                    Some(seen) if seen == i => Verdict::Dup,
                    Some(_) => Verdict::Conflict,
                    None => {
                        batch.insert(&i.idempotency_key, i);
                        Verdict::Accepted
                    }
                }
            })
            .collect();
        Ok(Plan { verdicts })
    }

    /// Records accepted intents (from [`Ledger::plan`] or a journal replay).
    ///
    /// # Errors
    /// When an intent's epoch is not registered to its run or its key is already taken
    /// (impossible after a successful `plan`; a corrupt journal otherwise). Nothing is
    /// applied then.
    pub fn insert_intents(&mut self, intents: &[Intent]) -> Result<(), String> {
        let mut fresh = HashSet::new();
        for i in intents {
            match self.epochs.get(&(i.tenant.clone(), i.epoch.clone())) {
                Some(e) if e.run.run_id == i.run_id && e.run.manifest_digest == i.manifest_digest => {}
                _ => {
                    return Err(format!(
                        "intent {} names a run that does not hold its epoch",
                        i.idempotency_key
                    ));
                }
            }
            if self.keys.contains_key(&i.idempotency_key) || !fresh.insert(i.idempotency_key.as_str()) {
                return Err(format!("intent {} accepted twice", i.idempotency_key));
            }
        }
        for i in intents {
            let e = self.epochs.get_mut(&(i.tenant.clone(), i.epoch.clone())).expect("checked above");
            e.total_minor += u128::from(i.amount_minor);
            e.intents += 1;
            self.keys.insert(i.idempotency_key.clone(), i.clone());
        }
        Ok(())
    }

    /// Number of accepted intent keys.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Number of registered epochs.
    pub fn epoch_count(&self) -> usize {
        self.epochs.len()
    }

    /// The `epochs` list of `GET /v1/stats`, sorted by `(tenant, epoch)`.
    pub fn epochs_json(&self) -> Value {
        Value::Array(
            self.epochs
                .iter()
                .map(|((tenant, epoch), e)| {
                    json!({
                        "tenant": tenant,
                        "epoch": epoch,
                        "run_id": e.run.run_id,
                        "manifest_digest": e.run.manifest_digest,
                        "payout_total_minor": e.run.payout_total_minor,
                        "payees": e.run.payees,
                        "total_minor": e.total_minor.to_string(),
                        "intents": e.intents,
                    })
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use rewarder_core::commit::intent_key;

    use super::*;

    fn run(id: char) -> RunRegistration {
        RunRegistration {
            run_id: format!("b3:{}", id.to_string().repeat(64)),
            manifest_digest: format!("b3:{}", "d".repeat(64)),
            payout_total_minor: "100".into(),
            payees: 3,
        }
    }

    fn intent(actor: &str, amount: u64, r: &RunRegistration) -> Intent {
        Intent {
            idempotency_key: intent_key("t", "e", actor),
            tenant: "t".into(),
            epoch: "e".into(),
            actor: actor.into(),
            amount_minor: amount,
            run_id: r.run_id.clone(),
            manifest_digest: r.manifest_digest.clone(),
        }
    }

    #[test]
    fn registration() {
        let mut l = Ledger::default();
        let a = run('a');
        assert_eq!(l.check_run("t", "e", &a), Registration::New);
        l.insert_run("t", "e", a.clone());
        assert_eq!(l.check_run("t", "e", &a), Registration::Same);
        assert_eq!(l.check_run("t", "e", &run('b')), Registration::HeldBy(a.run_id.clone()));
        assert_eq!(l.check_run("t2", "e", &run('b')), Registration::New);
        let other_total = RunRegistration { payout_total_minor: "99".into(), ..a.clone() };
        assert_eq!(l.check_run("t", "e", &other_total), Registration::Mismatch(a));
    }

    #[test]
    fn verdicts_in_order_and_within_a_batch() {
        let mut l = Ledger::default();
        let a = run('a');
        l.insert_run("t", "e", a.clone());
        let batch = [intent("x", 5, &a), intent("y", 7, &a), intent("x", 5, &a), intent("y", 8, &a)];
        let plan = l.plan(&batch).unwrap();
        use Verdict::*;
        assert_eq!(plan.verdicts, [Accepted, Accepted, Dup, Conflict]);
        assert_eq!(l.key_count(), 0, "plan changes nothing");
        l.insert_intents(&plan.accepted(&batch).cloned().collect::<Vec<_>>()).unwrap();
        assert_eq!(l.key_count(), 2);
        assert_eq!(l.epochs_json()[0]["total_minor"], "12");
        assert_eq!(l.epochs_json()[0]["intents"], 2);
        let again = [intent("y", 7, &a), intent("x", 6, &a), intent("z", 1, &a)];
        assert_eq!(l.plan(&again).unwrap().verdicts, [Dup, Conflict, Accepted]);
        assert!(l.insert_intents(&batch[..1]).is_err(), "a key is never accepted twice");
    }

    #[test]
    fn refusals() {
        let mut l = Ledger::default();
        let (a, b) = (run('a'), run('b'));
        assert_eq!(l.plan(&[intent("x", 1, &a)]), Err(Refusal::NotRegistered { index: 0 }));
        l.insert_run("t", "e", a.clone());
        assert_eq!(
            l.plan(&[intent("x", 1, &a), intent("y", 1, &b)]),
            Err(Refusal::WrongRun { index: 1, held_by: a.run_id.clone() })
        );
        let mut other_digest = intent("x", 1, &a);
        other_digest.manifest_digest = format!("b3:{}", "e".repeat(64));
        assert!(matches!(l.plan(&[other_digest.clone()]), Err(Refusal::WrongRun { index: 0, .. })));
        assert!(l.insert_intents(&[other_digest]).is_err());
        assert_eq!(l.key_count(), 0);
    }
}
