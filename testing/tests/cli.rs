//! The `rewarder-testkit` binary end to end, and the generated documents through the core's
//! own parsers (the reference validation of CALCULUS.md §1).

use std::path::PathBuf;
use std::process::{Command, Output};

use rewarder_core::{Inputs, Limits, Policy};
use rewarder_testkit::vectors::{
    ACTOR_CAP_BPS, KINDS, MAX_POOL_MINOR, MIN_PAYOUT_MINOR, POLICY_ID, POOL_MINOR, UNUSED_KIND,
};
use rewarder_testkit::{Scale, generate};

fn testkit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rewarder-testkit")).args(args).output().expect("run rewarder-testkit")
}

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("testkit-cli-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn vectors_writes_both_files() {
    let dir = scratch("writes");
    let out = dir.join("nested/S");
    let o = testkit(&[
        "vectors",
        "--scale",
        "S",
        "--epoch",
        "2026-11-29",
        "--seed",
        "7",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert_eq!(o.status.code(), Some(0));
    let (inputs, policy) = generate(Scale::S, "2026-11-29", 7);
    assert_eq!(std::fs::read(out.join("inputs.json")).unwrap(), inputs);
    assert_eq!(std::fs::read(out.join("policy.json")).unwrap(), policy);
    // One summary line naming the files, sizes and counts.
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    for needle in
        ["inputs.json", "policy.json", &format!("({} bytes)", inputs.len()), "1000 actors", "10000 events"]
    {
        assert!(stderr.contains(needle), "missing {needle:?} in {stderr}");
    }
    assert!(o.stdout.is_empty());
}

#[test]
fn vectors_defaults_and_repeatability() {
    let dir = scratch("defaults");
    let (a, b) = (dir.join("a"), dir.join("b"));
    for d in [&a, &b] {
        let o = testkit(&["vectors", "--scale", "s", "--out", d.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let (inputs, _) = generate(Scale::S, "demo", 0);
    assert_eq!(std::fs::read(a.join("inputs.json")).unwrap(), inputs);
    assert_eq!(std::fs::read(a.join("inputs.json")).unwrap(), std::fs::read(b.join("inputs.json")).unwrap());
    assert_eq!(std::fs::read(a.join("policy.json")).unwrap(), std::fs::read(b.join("policy.json")).unwrap());
}

#[test]
fn bad_flags_exit_2() {
    let dir = scratch("bad");
    let out = dir.to_str().unwrap();
    for args in [
        &["vectors", "--scale", "X", "--out", out][..],
        &["vectors", "--scale", "S", "--epoch", "bad epoch", "--out", out],
        &["vectors", "--scale", "S", "--seed", "-1", "--out", out],
        &["vectors", "--scale", "S"],
        &["vectors", "--out", out],
        &["nope"],
        &[],
    ] {
        let o = testkit(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        assert!(!o.stderr.is_empty());
    }
    let o = testkit(&["vectors", "--scale", "X", "--out", out]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("--scale") && stderr.contains("X"), "{stderr}");
    assert!(!dir.exists(), "nothing written on a usage error");
}

#[test]
fn unwritable_out_exits_1() {
    let dir = scratch("unwritable");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("a-file");
    std::fs::write(&file, b"x").unwrap();
    // A directory below a regular file cannot be created, even by root.
    let out = file.join("sub");
    let o = testkit(&["vectors", "--scale", "S", "--out", out.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("rewarder-testkit: error: cannot create output directory"), "{stderr}");
    assert!(stderr.contains("a-file"), "{stderr}");
}

#[test]
fn help_lists_the_subcommand() {
    let o = testkit(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("vectors"));
    let o = testkit(&["vectors", "--help"]);
    assert_eq!(o.status.code(), Some(0));
    let help = String::from_utf8_lossy(&o.stdout);
    for flag in ["--scale", "--epoch", "--seed", "--out"] {
        assert!(help.contains(flag), "{help}");
    }
}

/// The documents pass the core's own validation (CALCULUS.md §1.1, §1.2) and read back as
/// generated.
#[test]
fn core_parsers_accept_the_documents() {
    for (scale, epoch, seed) in [(Scale::S, "demo", 0), (Scale::M, "2026-11-29", 1), (Scale::L, "demo", 2)] {
        let (raw_inputs, raw_policy) = generate(scale, epoch, seed);
        let inputs = Inputs::parse(&raw_inputs, &Limits::UNBOUNDED)
            .unwrap_or_else(|e| panic!("{scale}: core rejects the inputs: {e:?}"));
        assert_eq!(inputs.actor_count(), scale.actors());
        assert_eq!(inputs.event_count(), scale.events());
        assert_eq!(inputs.epoch(), epoch);
        assert_eq!(inputs.pool_minor(), POOL_MINOR);
        assert_eq!(inputs.kinds(), KINDS.iter().map(|k| k.name).collect::<Vec<_>>());
        assert!(inputs.cid().starts_with("b3:"));

        let policy = Policy::parse(&raw_policy).unwrap_or_else(|e| panic!("core rejects the policy: {e:?}"));
        assert_eq!(policy.policy_id(), POLICY_ID);
        for k in &KINDS {
            assert_eq!(policy.weight(k.name), k.weight, "{}", k.name);
            assert_eq!(policy.cap(k.name), k.cap, "{}", k.name);
        }
        assert!(policy.weight(UNUSED_KIND) > 0);
        assert_eq!(policy.actor_cap_bps(), Some(ACTOR_CAP_BPS));
        assert_eq!(policy.min_payout_minor(), MIN_PAYOUT_MINOR);
        assert_eq!(policy.max_pool_minor(), Some(MAX_POOL_MINOR));
    }
}

/// The S/M/L documents (epoch `demo`, seed 0: the CLI defaults) keep their committed content
/// ids and manifest digests; `REWARDER_BLESS=1` rewrites the file after a deliberate change.
#[test]
fn scale_golden_digests_match() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("performance/vectors/golden.json");
    let mut got = serde_json::Map::new();
    for scale in Scale::ALL {
        let (inputs, policy) = generate(scale, "demo", 0);
        let inputs = std::sync::Arc::new(Inputs::parse(&inputs, &Limits::UNBOUNDED).unwrap());
        let policy = Policy::parse(&policy).unwrap();
        let run = rewarder_core::Run::compute(&inputs, &policy, "default").unwrap();
        got.insert(
            scale.to_string(),
            serde_json::json!({
                "epoch": "demo",
                "seed": 0,
                "tenant": "default",
                "inputs_cid": inputs.cid(),
                "manifest_digest": run.manifest_digest(),
            }),
        );
    }
    let got = serde_json::Value::Object(got);
    if std::env::var_os("REWARDER_BLESS").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&got).unwrap() + "\n").unwrap();
    }
    let want: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(got, want, "S/M/L digests changed: regenerate with REWARDER_BLESS=1 only if intended");
}
