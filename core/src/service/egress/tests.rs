//! Egress against a fake ledger, pacer and clock ([`support`]).

mod support;

use std::sync::atomic::Ordering;

use serde_json::Value;

use super::*;
use crate::service::Clock;
use crate::service::durable::DurableRun;
use crate::service::ledger::LedgerErrorKind;
use support::*;

#[test]
fn registers_first_then_sends_intents_in_batches() {
    let n = node(config());
    let a = n.compute("e1", 1_000_000, 5, false);
    assert_eq!(a.status, 200, "{}", a.json);
    assert_eq!(ledger_of(&a), ("emitted", 5, 0, 0));
    let s = n.ledger.state();
    assert_eq!(s.registrations, 1);
    assert_eq!(s.batches, vec![2, 2, 1]);
    assert_eq!(s.accepted, 5);
    let total: u64 = a.json["manifest"]["payout_total_minor"].as_str().unwrap().parse().unwrap();
    drop(s);
    assert!(total > 0);
    assert_eq!(n.metric("ledger_intents_total{result=\"accepted\"}"), 5);
    assert_eq!(n.metric("ledger_egress_latency_seconds_count"), 4);
    assert_eq!(ledger_of(&n.call("GET", "/rewarder/epochs/e1", b"")), ("emitted", 5, 0, 0));
}

#[test]
fn dry_runs_and_compute_only_nodes_send_nothing() {
    let n = node(config());
    let a = n.compute("e1", 1_000_000, 3, true);
    assert_eq!((a.status, ledger_of(&a)), (200, ("dry_run", 0, 0, 0)));
    let s = n.ledger.state();
    assert_eq!((s.registrations, s.batches.len()), (0, 0));
}

#[test]
fn retries_back_off_exponentially_with_jitter() {
    let n = node(config());
    n.ledger
        .state()
        .script
        .extend([Some(Fault::Fail(LedgerErrorKind::Timeout)), Some(Fault::Fail(LedgerErrorKind::Server))]);
    let a = n.compute("e1", 1_000_000, 2, false);
    assert_eq!((a.status, ledger_of(&a)), (200, ("emitted", 2, 0, 0)));
    // 50 ms then 100 ms, each half fixed and half jittered (7 ms of "random" here).
    assert_eq!(*n.pacer.pauses.lock().unwrap(), vec![32 * MS, 57 * MS]);
    assert_eq!(n.metric("ledger_egress_errors_total"), 2);
    assert_eq!(n.ledger.state().registrations, 1);
    let c = config();
    for retry in 0..30 {
        for random in [0, 1, u64::MAX / 3, u64::MAX] {
            let d = c.backoff(retry, random);
            let full = c.backoff_base.saturating_mul(1 << retry.min(20)).min(c.backoff_max);
            assert!(d >= full / 2 && d <= full, "{retry} {random} {d:?}");
        }
    }
}

#[test]
fn a_lost_answer_is_resent_and_the_ledger_answers_dup() {
    let n = node(config());
    n.ledger.state().script.extend([None, Some(Fault::ApplyThenTimeout), Some(Fault::ApplyThenTimeout)]);
    let a = n.compute("e1", 1_000_000, 4, false);
    assert_eq!(a.status, 200);
    let (status, accepted, dup, _) = ledger_of(&a);
    assert_eq!((status, accepted + dup), ("emitted", 4));
    let s = n.ledger.state();
    assert_eq!((s.accepted, s.conflict), (4, 0), "every key accepted exactly once");
    assert!(s.dup >= 1);
}

#[test]
fn garbage_answers_are_errors_never_success() {
    for fault in [Fault::WrongCount, Fault::OutOfOrder] {
        let n = node(config());
        n.ledger.state().garbage = Some(fault);
        let a = n.compute("e1", 1_000_000, 2, false);
        assert_eq!((a.status, ledger_of(&a)), (202, ("quarantined", 0, 0, 2)), "{fault:?}");
        assert_eq!(n.metric("ledger_intents_total{result=\"accepted\"}"), 0);
        assert_eq!(n.metric("ledger_intents_total{result=\"error\"}"), 2);
        assert_eq!(n.metric("ledger_intents_total{result=\"quarantined\"}"), 2);
        assert_eq!(n.ledger.state().batches.len(), 3, "tried 1 + LEDGER_MAX_RETRIES times");
        // The ledger did apply them behind its garbage: the drain's re-send is all dup.
        n.ledger.state().garbage = None;
        n.drain_all(500 * MS);
        let g = n.call("GET", "/rewarder/epochs/e1", b"");
        assert_eq!(ledger_of(&g), ("emitted", 0, 2, 0), "{fault:?}");
        assert_eq!(n.ledger.state().accepted, 2);
    }
}

#[test]
fn an_outage_quarantines_then_the_drain_emits_once_the_ledger_is_back() {
    let n = node(config());
    n.ledger.state().down = true;
    let a = n.compute("e1", 1_000_000, 5, false);
    assert_eq!((a.status, ledger_of(&a)), (202, ("quarantined", 0, 0, 5)));
    // One whole failed retry sequence: brownout, quarantine-only.
    assert_eq!(n.metric("ledger_degraded"), 1);
    assert_eq!(n.metric("quarantine_queue_depth"), 5);
    let ready = n.call("GET", "/readyz", b"");
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json["ledger_degraded"], true);
    assert_eq!(ready.json["details"], serde_json::json!(["ledger_degraded"]));
    // A second run during the brownout is queued without a single ledger call.
    let calls = n.metric("ledger_egress_latency_seconds_count");
    let b = n.compute("e2", 1_000_000, 3, false);
    assert_eq!((b.status, ledger_of(&b)), (202, ("quarantined", 0, 0, 3)));
    assert_eq!(n.metric("ledger_egress_latency_seconds_count"), calls);
    // A re-sent compute of a queued run answers its progress; it sends nothing either.
    let again = n.compute("e2", 1_000_000, 3, false);
    assert_eq!((again.status, ledger_of(&again)), (202, ("quarantined", 0, 0, 3)));
    assert_eq!(n.service.quarantine_depth(), 8);
    // Probes while down keep the node in brownout.
    for _ in 0..5 {
        let r = n.service.drain_quarantine(100);
        assert!(r.probed && r.degraded && !r.progressed() && r.error.is_some());
        n.clock.advance(500 * MS);
    }
    n.ledger.state().down = false;
    let started = n.clock.monotonic();
    let calls = n.drain_all(250 * MS);
    // Probes must answer for a whole window (2 s) before anything is sent.
    assert!(n.clock.monotonic() - started >= Duration::from_secs(2));
    assert!(calls >= 9, "{calls}");
    assert_eq!(n.metric("ledger_degraded"), 0);
    assert_eq!(n.metric("quarantine_queue_depth"), 0);
    for (epoch, payees) in [("e1", 5), ("e2", 3)] {
        let g = n.call("GET", &format!("/rewarder/epochs/{epoch}"), b"");
        assert_eq!(ledger_of(&g), ("emitted", payees, 0, 0), "{epoch}");
    }
    let s = n.ledger.state();
    assert_eq!((s.accepted, s.dup, s.conflict, s.registrations), (8, 0, 0, 2));
    drop(s);
    let ready = n.call("GET", "/readyz", b"");
    assert_eq!(ready.json["details"], serde_json::json!([]));
}

#[test]
fn a_run_is_queued_from_the_batch_that_failed() {
    let n = node(EgressConfig { failures_to_degrade: 100, ..config() });
    // Registration and batch 1 answer; batch 2 fails on all three attempts.
    let fail = Some(Fault::Fail(LedgerErrorKind::Server));
    n.ledger.state().script.extend([None, None, fail, fail, fail]);
    let a = n.compute("e1", 1_000_000, 5, false);
    assert_eq!((a.status, ledger_of(&a)), (202, ("quarantined", 2, 0, 3)));
    assert_eq!(n.metric("ledger_intents_total{result=\"error\"}"), 2);
    assert_eq!(n.metric("ledger_intents_total{result=\"quarantined\"}"), 3);
    assert_eq!(n.metric("ledger_degraded"), 0, "failures_to_degrade is high here");
    // Not in brownout: the drain sends at once, from the failed batch on.
    let r = n.service.drain_quarantine(100);
    assert!(!r.probed);
    assert_eq!((r.accepted, r.dup, r.emitted_runs, r.queue_depth), (3, 0, 1, 0), "{r:?}");
    assert_eq!(ledger_of(&n.call("GET", "/rewarder/epochs/e1", b"")), ("emitted", 5, 0, 0));
    // Failed attempts never reached the ledger; the drain re-sent from the failed batch.
    assert_eq!(n.ledger.state().batches, vec![2, 2, 1]);
    assert_eq!(n.ledger.state().accepted, 5);
}

#[test]
fn the_drain_keeps_to_its_budget_and_get_shows_progress() {
    let n = node(EgressConfig { failures_to_degrade: 100, ..config() });
    n.ledger.state().garbage = Some(Fault::WrongCount);
    let a = n.compute("e1", 1_000_000, 5, false);
    assert_eq!((a.status, ledger_of(&a)), (202, ("quarantined", 0, 0, 5)));
    n.ledger.state().garbage = None;
    let r = n.service.drain_quarantine(3);
    // Batch 1 was applied behind the garbage: re-sent, it is dup.
    assert_eq!((r.accepted, r.dup, r.queue_depth, r.emitted_runs), (1, 2, 2, 0), "{r:?}");
    assert_eq!(ledger_of(&n.call("GET", "/rewarder/epochs/e1", b"")), ("quarantined", 1, 2, 2));
    let r = n.service.drain_quarantine(100);
    assert_eq!((r.accepted, r.queue_depth, r.queued_runs, r.emitted_runs), (2, 0, 0, 1), "{r:?}");
    assert_eq!(ledger_of(&n.call("GET", "/rewarder/epochs/e1", b"")), ("emitted", 3, 2, 0));
    assert_eq!(n.ledger.state().accepted, 5);
    assert!(!n.service.drain_quarantine(100).progressed());
}

#[test]
fn a_slow_ledger_puts_the_node_in_brownout_until_probes_are_fast_for_a_window() {
    let n = node(EgressConfig { batch_max: 1, ..config() });
    n.ledger.state().latency = 150 * MS; // over the 100 ms budget
    // Five requests (registration + 4 intents) are the samples a p95 needs.
    let a = n.compute("e1", 1_000_000, 6, false);
    assert_eq!((a.status, ledger_of(&a)), (202, ("quarantined", 4, 0, 2)));
    assert_eq!(n.metric("ledger_degraded"), 1);
    assert_eq!(n.call("GET", "/readyz", b"").status, 200);
    // Slow probes: still degraded, however long.
    n.ledger.state().probe_latency = 150 * MS;
    for _ in 0..12 {
        assert!(n.service.drain_quarantine(100).degraded);
        n.clock.advance(250 * MS);
    }
    // Fast probes for a whole window: it leaves, and drains.
    n.ledger.state().probe_latency = 10 * MS;
    n.ledger.state().latency = 10 * MS;
    let probes = n.ledger.state().probes;
    n.drain_all(250 * MS);
    assert!(n.ledger.state().probes - probes >= 8);
    assert_eq!(n.metric("ledger_degraded"), 0);
    assert_eq!(ledger_of(&n.call("GET", "/rewarder/epochs/e1", b"")), ("emitted", 6, 0, 0));
}

#[test]
fn a_conflict_answer_is_an_invariant_failure_and_never_retried() {
    let n = node(config());
    let first = n.compute("e1", 1_000_000, 3, false);
    assert_eq!(first.status, 200);
    // The ledger forgets the registration (a ledger defect): the next run of the epoch
    // registers and its intents collide with the first run's keys.
    n.ledger.state().runs.clear();
    let batches = n.ledger.state().batches.len();
    let other = n.compute_as("e1", 2_000_000, 3, "other-node");
    assert_eq!(other.status, 500, "{}", other.json);
    assert_eq!(other.json["error"]["code"], "invariant_violation");
    assert_eq!(other.json["error"]["details"]["conflicts"], 3);
    assert_eq!(n.metric("reward_invariant_fail_total"), 1);
    assert_eq!(n.metric("ledger_intents_total{result=\"conflict\"}"), 3);
    let s = n.ledger.state();
    assert_eq!(s.batches.len() - batches, 2, "one request per batch, none retried");
    assert_eq!((s.accepted, s.conflict), (3, 3));
    assert!(n.pacer.pauses.lock().unwrap().is_empty());
}

#[test]
fn a_second_run_of_an_epoch_is_refused_409_and_emits_nothing() {
    let n = node(config());
    let first = n.compute("e1", 1_000_000, 3, false);
    assert_eq!(first.status, 200);
    let digest = first.json["manifest_digest"].clone();
    // This node remembers the claim: 409 without asking the ledger.
    let calls = n.metric("ledger_egress_latency_seconds_count");
    let second = n.compute("e1", 2_000_000, 3, false);
    assert_eq!(second.status, 409, "{}", second.json);
    assert_eq!(second.json["error"]["code"], "epoch_conflict");
    assert_eq!(second.json["error"]["details"]["run_id"], first.json["manifest"]["run_id"]);
    assert_eq!(n.metric("ledger_egress_latency_seconds_count"), calls);
    // The epoch's result is still the run that holds it.
    assert_eq!(n.call("GET", "/rewarder/epochs/e1", b"").json["manifest_digest"], digest);
    // A dry run of the other inputs is still fine: it registers nothing.
    assert_eq!(n.compute("e1", 2_000_000, 3, true).status, 200);
    // Another node (no local record) hears 409 from the ledger.
    let other = node(config());
    other.ledger.state().runs.insert(("default".into(), "e1".into()), "b3:someone-else".into());
    let refused = other.compute("e1", 1_000_000, 3, false);
    assert_eq!(refused.status, 409);
    let s = other.ledger.state();
    assert_eq!((s.registrations, s.batches.len(), s.accepted), (1, 0, 0));
    drop(s);
    assert_eq!(other.call("GET", "/rewarder/epochs/e1", b"").status, 409);
    let s = n.ledger.state();
    assert_eq!((s.accepted, s.dup, s.conflict), (3, 0, 0));
}

#[test]
fn a_replay_of_an_emitted_run_answers_its_record_and_sends_nothing_even_in_brownout() {
    let n = node(config());
    assert_eq!(ledger_of(&n.compute("e1", 1_000_000, 3, false)), ("emitted", 3, 0, 0));
    let replay = n.compute("e1", 1_000_000, 3, false);
    assert_eq!((replay.status, ledger_of(&replay)), (200, ("emitted", 3, 0, 0)));
    assert_eq!(n.metric("reward_runs_total{status=\"cached\"}"), 1);
    // A brownout (another run met a dead ledger), then the replay again: still 200.
    n.ledger.state().down = true;
    assert_eq!(n.compute("e2", 1_000_000, 3, false).status, 202);
    assert_eq!(n.metric("ledger_degraded"), 1);
    n.ledger.state().down = false;
    let calls = n.metric("ledger_egress_latency_seconds_count");
    let replay = n.compute("e1", 1_000_000, 3, false);
    assert_eq!((replay.status, ledger_of(&replay)), (200, ("emitted", 3, 0, 0)));
    assert_eq!(n.metric("ledger_egress_latency_seconds_count"), calls, "not one ledger request");
    assert_eq!(n.service.quarantine_depth(), 3, "nothing queued again");
    let s = n.ledger.state();
    assert_eq!((s.accepted, s.dup, s.registrations), (3, 0, 1));
}

#[test]
fn durable_acceptance_keeps_the_run_before_any_request_and_deletes_it_once_emitted() {
    let n = durable_node(EgressConfig { failures_to_degrade: 100, ..config() });
    let store = n.store.clone().unwrap();
    // Registration and batch 1 answer; batch 2 fails on all three attempts.
    let fail = Some(Fault::Fail(LedgerErrorKind::Server));
    n.ledger.state().script.extend([None, None, fail, fail, fail]);
    let a = n.compute("e1", 1_000_000, 5, false);
    assert_eq!((a.status, ledger_of(&a)), (202, ("quarantined", 2, 0, 3)));
    assert_eq!(a.json["ledger"]["durable"], true);
    assert_eq!(*store.ledger_calls_at_insert.lock().unwrap(), vec![0], "kept before the first request");
    let rows = store.rows();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].tenant.as_str(), rows[0].epoch.as_str(), rows[0].payees), ("default", "e1", 5));
    assert_eq!(rows[0].cursor, Cursor { next: 2, accepted: 2, dup: 0 }, "the cursor follows batch 1");
    n.drain_all(250 * MS);
    assert!(store.rows().is_empty(), "deleted once every intent is answered");
    // A healthy run is kept, then deleted within the same compute.
    let b = n.compute("e2", 1_000_000, 3, false);
    assert_eq!(
        (b.status, ledger_of(&b), &b.json["ledger"]["durable"]),
        (200, ("emitted", 3, 0, 0), &Value::Bool(true))
    );
    assert_eq!(store.ledger_calls_at_insert.lock().unwrap().len(), 2);
    assert!(store.rows().is_empty());
    // A dry run carries no `durable`; a node without a store says false.
    assert!(n.compute("e3", 1_000_000, 3, true).json["ledger"].get("durable").is_none());
    assert_eq!(node(config()).compute("e1", 1_000_000, 3, false).json["ledger"]["durable"], false);
}

#[test]
fn a_restarted_node_drains_what_its_store_kept_from_the_cursor_and_answers_its_progress() {
    let n = durable_node(EgressConfig { failures_to_degrade: 100, ..config() });
    let fail = Some(Fault::Fail(LedgerErrorKind::Server));
    n.ledger.state().script.extend([None, None, fail, fail, fail]);
    let a = n.compute("e1", 1_000_000, 5, false);
    assert_eq!(a.status, 202);
    n.ledger.state().down = true;
    assert_eq!(n.compute("e2", 1_000_000, 3, false).status, 202);
    // The process dies; a new one knows only its store. No client computes anything.
    let m = n.restart();
    drop(n);
    assert_eq!(m.service.quarantine_depth(), 6);
    let g = m.call("GET", "/rewarder/epochs/e1", b"");
    assert_eq!((g.status, ledger_of(&g)), (200, ("quarantined", 2, 0, 3)), "progress from the record");
    assert_eq!(g.json["manifest_digest"], a.json["manifest_digest"]);
    assert_eq!(g.json["allocations"], a.json["allocations"], "the payees survive, not only the counts");
    assert_eq!(m.call("GET", "/rewarder/epochs/e1/proof/acct:a004", b"").status, 200);
    assert_eq!(ledger_of(&m.call("GET", "/rewarder/epochs/e2", b"")), ("quarantined", 0, 0, 3));
    m.ledger.state().down = false;
    m.drain_all(250 * MS);
    for (epoch, accepted) in [("e1", 5), ("e2", 3)] {
        let g = m.call("GET", &format!("/rewarder/epochs/{epoch}"), b"");
        assert_eq!(ledger_of(&g), ("emitted", accepted, 0, 0), "{epoch}");
    }
    let s = m.ledger.state();
    assert_eq!((s.accepted, s.dup, s.conflict), (8, 0, 0), "exactly once, sent from the cursor");
    drop(s);
    assert!(m.store.as_ref().unwrap().rows().is_empty());
    // The recovered claim still refuses another run of the epoch.
    assert_eq!(m.compute("e1", 2_000_000, 5, false).status, 409);
}

#[test]
fn a_store_that_refuses_the_run_answers_503_and_sends_nothing() {
    let n = durable_node(config());
    n.store.as_ref().unwrap().refuse.store(true, Ordering::SeqCst);
    let a = n.compute("e1", 1_000_000, 3, false);
    assert_eq!((a.status, a.json["error"]["code"].as_str()), (503, Some("not_ready")));
    assert_eq!(n.ledger.state().registrations, 0);
    assert_eq!(n.service.quarantine_depth(), 0);
    n.store.as_ref().unwrap().refuse.store(false, Ordering::SeqCst);
    assert_eq!(n.compute("e1", 1_000_000, 3, false).status, 200, "the claim was given back");
}

#[test]
fn a_damaged_record_stops_the_start_and_a_store_needs_a_ledger() {
    let store = Arc::new(MemStore::default());
    let row = DurableRun {
        run_id: "b3:x".into(),
        tenant: "default".into(),
        epoch: "e1".into(),
        payees: 1,
        cursor: Cursor::default(),
        record: b"RWQ1garbage".to_vec(),
    };
    store.rows.lock().unwrap().push(row);
    let n = node(config());
    let e = n.service.with_queue_store(store.clone()).err().expect("refused");
    assert!(e.0.contains("damaged"), "{e}");
    let bare =
        Service::new(service_config(64), Arc::new(FakeClock::default()), Arc::new(Host), Arc::new(Refuses));
    assert!(bare.with_queue_store(Arc::new(MemStore::default())).is_err());
}

#[test]
fn the_quarantine_only_switch_holds_every_intent_until_it_is_turned_off() {
    let n = node(config());
    n.quarantine_only(true);
    assert_eq!(n.metric("ledger_quarantine_only"), 1);
    let ready = n.call("GET", "/readyz", b"");
    assert_eq!((ready.status, &ready.json["ledger_quarantine_only"]), (200, &Value::Bool(true)));
    assert_eq!(ready.json["details"], serde_json::json!(["ledger_quarantine_only"]));
    let a = n.compute("e1", 1_000_000, 3, false);
    assert_eq!((a.status, ledger_of(&a)), (202, ("quarantined", 0, 0, 3)));
    for _ in 0..3 {
        let r = n.service.drain_quarantine(100);
        assert!(!r.probed && !r.progressed() && r.queue_depth == 3, "{r:?}");
        n.clock.advance(250 * MS);
    }
    let s = n.ledger.state();
    assert_eq!((s.registrations, s.batches.len(), s.probes), (0, 0, 0), "no ledger traffic at all");
    drop(s);
    assert_eq!(n.metric("ledger_degraded"), 0, "a switch, not a brownout");
    n.quarantine_only(false);
    n.drain_all(250 * MS);
    assert_eq!(ledger_of(&n.call("GET", "/rewarder/epochs/e1", b"")), ("emitted", 3, 0, 0));
    assert_eq!(n.metric("ledger_quarantine_only"), 0);
    assert_eq!(n.call("GET", "/readyz", b"").json["details"], serde_json::json!([]));
}

#[test]
fn a_full_quarantine_queue_refuses_new_runs_with_503() {
    let n = node(EgressConfig { quarantine_max: 5, ..config() });
    n.ledger.state().down = true;
    assert_eq!(n.compute("e1", 1_000_000, 3, false).status, 202);
    assert_eq!(n.compute("e2", 1_000_000, 3, false).status, 202, "4 < 5: admitted, may overshoot");
    let full = n.compute("e3", 1_000_000, 1, false);
    assert_eq!(full.status, 503);
    assert_eq!(full.json["error"]["code"], "overloaded");
    assert_eq!(n.metric("rejected_total{reason=\"quarantine_full\"}"), 1);
    assert_eq!(n.compute("e3", 1_000_000, 1, true).status, 200, "dry runs still compute");
    // A queued run re-sent is answered, not refused.
    assert_eq!(n.compute("e1", 1_000_000, 3, false).status, 202);
    n.ledger.state().down = false;
    n.drain_all(250 * MS);
    assert_eq!(n.compute("e3", 1_000_000, 1, false).status, 200);
    assert_eq!(n.ledger.state().accepted, 7);
}

#[test]
fn a_refusal_is_queued_at_once_and_a_registration_conflict_in_the_drain_drops_the_run() {
    let n = node(config());
    n.ledger.state().script.push_back(Some(Fault::Fail(LedgerErrorKind::Rejected)));
    let a = n.compute("e1", 1_000_000, 2, false);
    assert_eq!((a.status, ledger_of(&a)), (202, ("quarantined", 0, 0, 2)));
    assert!(n.pacer.pauses.lock().unwrap().is_empty(), "a refusal is not retried");
    // Meanwhile another node's run took the epoch at the ledger.
    n.ledger.state().runs.insert(("default".into(), "e1".into()), "b3:someone-else".into());
    let r = n.service.drain_quarantine(100);
    assert_eq!((r.lost_runs, r.queue_depth, r.accepted), (1, 0, 0), "{r:?}");
    assert_eq!(n.call("GET", "/rewarder/epochs/e1", b"").status, 409);
    assert_eq!(n.compute("e1", 1_000_000, 2, false).status, 409);
    assert_eq!(n.ledger.state().accepted, 0);
}

#[test]
fn a_run_with_no_payees_is_registered_and_emitted() {
    let n = node(config());
    let a = n.compute("e1", 0, 2, false);
    assert_eq!((a.status, ledger_of(&a)), (200, ("emitted", 0, 0, 0)), "{}", a.json);
    assert_eq!(n.ledger.state().registrations, 1);
    n.ledger.state().down = true;
    let b = n.compute("e2", 0, 2, false);
    assert_eq!((b.status, ledger_of(&b)), (202, ("quarantined", 0, 0, 0)));
    n.ledger.state().down = false;
    n.drain_all(250 * MS);
    assert_eq!(ledger_of(&n.call("GET", "/rewarder/epochs/e2", b"")), ("emitted", 0, 0, 0));
}

#[test]
fn a_quarantined_run_is_pinned_in_the_store_until_the_ledger_answered_it() {
    // RUNS_MAX = 2: every later run would evict an unpinned one.
    let n = node_with(config(), 2);
    n.ledger.state().down = true;
    let a = n.compute("e1", 1_000_000, 3, false);
    assert_eq!((a.status, ledger_of(&a)), (202, ("quarantined", 0, 0, 3)));
    let digest = a.json["manifest_digest"].clone();
    for i in 0..5 {
        assert_eq!(n.compute(&format!("d{i}"), 1_000_000, 2, true).status, 200);
    }
    // Still answerable, proofs included, and a re-sent compute is the queue's own run.
    let g = n.call("GET", "/rewarder/epochs/e1", b"");
    assert_eq!((g.status, ledger_of(&g)), (200, ("quarantined", 0, 0, 3)));
    assert_eq!(g.json["manifest_digest"], digest);
    assert_eq!(n.call("GET", "/rewarder/epochs/e1/proof/acct:a000", b"").status, 200);
    let again = n.compute("e1", 1_000_000, 3, false);
    assert_eq!((again.status, again.json["manifest_digest"].clone()), (202, digest.clone()));
    assert_eq!(n.metric("reward_runs_total{status=\"cached\"}"), 1);
    // Drained, the run is emitted and its pins are gone: later runs may evict it.
    n.ledger.state().down = false;
    n.drain_all(250 * MS);
    assert_eq!(ledger_of(&n.call("GET", "/rewarder/epochs/e1", b"")), ("emitted", 3, 0, 0));
    for i in 5..7 {
        assert_eq!(n.compute(&format!("d{i}"), 1_000_000, 2, true).status, 200);
    }
    assert_eq!(n.call("GET", "/rewarder/epochs/e1", b"").status, 404);
    assert_eq!(lock(&n.service.runs).len(), 2);
}

#[test]
fn a_run_lost_at_registration_in_the_drain_is_unpinned() {
    let n = node_with(config(), 1);
    n.ledger.state().script.push_back(Some(Fault::Fail(LedgerErrorKind::Rejected)));
    assert_eq!(n.compute("e1", 1_000_000, 2, false).status, 202);
    n.ledger.state().runs.insert(("default".into(), "e1".into()), "b3:someone-else".into());
    assert_eq!(n.service.drain_quarantine(100).lost_runs, 1);
    assert_eq!(n.compute("e2", 1_000_000, 2, true).status, 200);
    assert_eq!(lock(&n.service.runs).len(), 1, "e1 was evicted once unpinned");
    assert_eq!(n.call("GET", "/rewarder/epochs/e1", b"").status, 404);
}
