//! Shared fixtures of the benches: the testkit's S/M/L documents, parsed once.
//!
//! It measures nothing itself; `benches/reward_calc.rs` (criterion) and `benches/allocs.rs`
//! (allocation counts) do.

#![deny(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use rewarder_core::service::{Artifacts, Clock, Config, HotKnobs, Kept, Profile, Reload, Service};
use rewarder_core::{Inputs, Limits, Policy, SigningKeys};
use rewarder_testkit::Scale;

/// The seed every benchmark generates its documents from.
pub const SEED: u64 = 0;

/// One scale's documents, raw and parsed.
pub struct Fixture {
    /// The scale.
    pub scale: Scale,
    /// Raw inputs document.
    pub inputs_raw: Vec<u8>,
    /// Raw policy document.
    pub policy_raw: Vec<u8>,
    /// Parsed inputs.
    pub inputs: Arc<Inputs>,
    /// Parsed policy.
    pub policy: Policy,
}

impl Fixture {
    /// Generates and parses the documents of `scale`.
    ///
    /// # Panics
    /// If the testkit's documents do not parse — a bug in the testkit or the parser.
    pub fn new(scale: Scale) -> Fixture {
        let (inputs_raw, policy_raw) = rewarder_testkit::generate(scale, "demo", SEED);
        let inputs = Arc::new(Inputs::parse(&inputs_raw, &Limits::UNBOUNDED).expect("testkit inputs parse"));
        let policy = Policy::parse(&policy_raw).expect("testkit policy parses");
        Fixture { scale, inputs_raw, policy_raw, inputs, policy }
    }
}

/// Fixed signing keys, with ML-DSA-65 when `pq`.
pub fn keys(pq: bool) -> SigningKeys {
    SigningKeys::from_seeds(&[0x11; 32], pq.then_some(&[0x22; 32]))
}

/// A time that does not move (nothing measured depends on it).
struct Still;

impl Clock for Still {
    fn monotonic(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn unix_seconds(&self) -> u64 {
        1_800_000_000
    }
}

impl Artifacts for Still {
    fn keep(&self, _: &str, _: &[u8]) -> Kept {
        Kept::Held
    }
}

impl Reload for Still {
    fn hot_knobs(&self) -> Result<HotKnobs, String> {
        Ok(HotKnobs::default())
    }
}

/// A compute-only service (no ledger: every run is dry) with the bench keys [`keys`]`(false)`,
/// a clock that does not move and no limits on documents: what the handler gate and the
/// in-process latency example send their requests to.
pub fn service() -> Service {
    let config = Config {
        profile: Profile::Micronode,
        auth_keys: None,
        limits: Limits::UNBOUNDED,
        req_body_max_bytes: 1 << 20,
        inputs_max_bytes: 64 << 20,
        runs_max: 16,
        runs_max_bytes: 256 << 20,
        documents_max_bytes: 256 << 20,
        tenant_store_max_bytes: None,
        tenant_runs_max: None,
        keys: keys(false),
        hot: HotKnobs { tenant_rps_max: 1_000_000, ..HotKnobs::default() },
        features: Vec::new(),
    };
    let still = Arc::new(Still);
    Service::new(config, still.clone(), still.clone(), still)
}

/// One JSON line of latencies in milliseconds, as the latency examples print it:
/// `{"requests","p50_ms","p95_ms","p99_ms","max_ms","samples_ms":[…]}`, every sample in the
/// order taken (so a harness can pool the samples of interleaved rounds).
///
/// # Panics
/// If `samples` is empty.
pub fn latency_json(samples: &[f64]) -> String {
    assert!(!samples.is_empty(), "no latency samples");
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = |p: f64| sorted[((p / 100.0 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
    let listed: Vec<String> = samples.iter().map(|ms| format!("{ms:.4}")).collect();
    format!(
        "{{\"requests\":{},\"p50_ms\":{:.3},\"p95_ms\":{:.3},\"p99_ms\":{:.3},\"max_ms\":{:.3},\"samples_ms\":[{}]}}",
        samples.len(),
        at(50.0),
        at(95.0),
        at(99.0),
        at(100.0),
        listed.join(",")
    )
}

/// The operations the regression gates measure (`rewarder-icount`, `rewarder-heap`), each
/// prepared outside the measured region and run once inside it.
pub mod gate {
    use std::fmt;
    use std::hint::black_box;
    use std::io::Write as _;
    use std::sync::Arc;

    use rewarder_core::service::{Request, Response, Service};
    use rewarder_core::{Inputs, Limits, Policy, Run, SigningKeys};
    use rewarder_testkit::Scale;

    /// The documents an operation is measured on.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Doc {
        /// The testkit's documents of a scale (seed [`super::SEED`], epoch `demo`).
        Testkit(Scale),
        /// `testing/performance/adversarial.py`'s `actor_ids_128`, byte for byte: M's 10,000
        /// actors and 100,000 events with every id exactly 128 bytes long (three BLAKE3 blocks
        /// per Merkle leaf instead of one), the shape the batched leaves were made for.
        Ids128,
    }

    impl Doc {
        /// `S`, `M`, `L` or `ids128`.
        pub fn from_name(name: &str) -> Option<Doc> {
            match name {
                "ids128" => Some(Doc::Ids128),
                _ => name.parse::<Scale>().ok().map(Doc::Testkit),
            }
        }

        /// The raw inputs and policy documents.
        pub fn documents(self) -> (Vec<u8>, Vec<u8>) {
            match self {
                Doc::Testkit(scale) => rewarder_testkit::generate(scale, "demo", super::SEED),
                Doc::Ids128 => actor_ids_128(),
            }
        }
    }

    impl fmt::Display for Doc {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                Doc::Testkit(scale) => write!(f, "{scale}"),
                Doc::Ids128 => f.write_str("ids128"),
            }
        }
    }

    /// adversarial.py's `actor_ids_128`: its inputs and policy documents.
    fn actor_ids_128() -> (Vec<u8>, Vec<u8>) {
        const ACTORS: u64 = 10_000;
        const EVENTS: u64 = 100_000;
        const KINDS: u64 = 4;
        let mut out = Vec::new();
        out.extend_from_slice(br#"{"schema":"rewarder.inputs.v1","epoch":"adv-actor_ids_128","pool_minor":"1000000000007","kinds":["k0","k1","k2","k3"],"actors":["#);
        for i in 0..ACTORS {
            // `f"acct:{i:07d}:".ljust(128, "x")`
            let mut id = format!("acct:{i:07}:");
            id.extend(std::iter::repeat_n('x', 128 - id.len()));
            let comma = if i > 0 { "," } else { "" };
            write!(out, "{comma}\"{id}\"").expect("writing to a Vec");
        }
        out.extend_from_slice(br#"],"events":["#);
        // adversarial.py's `spread`: event i → a scattered actor and kind, varied units.
        for i in 0..EVENTS {
            let (actor, kind, units) = ((i * 7919) % ACTORS, (i * 31) % KINDS, 1 + (i * 104_729) % 5000);
            let comma = if i > 0 { "," } else { "" };
            write!(out, "{comma}[{i},{actor},{kind},{units}]").expect("writing to a Vec");
        }
        out.extend_from_slice(b"]}");
        let policy = br#"{"schema":"rewarder.policy.v1","policy_id":"adv","weights":{"k0":1,"k1":1,"k2":1,"k3":1},"min_payout_minor":"1"}"#;
        (out, policy.to_vec())
    }

    /// What is measured.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Op {
        /// Parse + validate + content id of the raw inputs document (`Inputs::parse`).
        Parse,
        /// One signed compute from parsed documents (`Run::compute` + Ed25519).
        Compute,
        /// One compute through the whole request handler (`Service::handle` of
        /// `POST /rewarder/epochs/{epoch}/compute`: admission of the head, then the answer,
        /// the two phases the server runs; a dry run, the answer with its allocations
        /// rendered), the documents stored beforehand.
        Handler,
    }

    impl Op {
        /// `parse`, `compute` or `handler`.
        pub fn from_name(name: &str) -> Option<Op> {
            match name {
                "parse" => Some(Op::Parse),
                "compute" => Some(Op::Compute),
                "handler" => Some(Op::Handler),
                _ => None,
            }
        }

        /// The name [`Op::from_name`] reads.
        pub fn name(self) -> &'static str {
            match self {
                Op::Parse => "parse",
                Op::Compute => "compute",
                Op::Handler => "handler",
            }
        }
    }

    /// An operation with everything it reads made ready.
    pub struct Prepared {
        op: Op,
        inputs_raw: Vec<u8>,
        inputs: Option<Arc<Inputs>>,
        policy: Option<Policy>,
        keys: SigningKeys,
        service: Option<(Service, String, Vec<u8>)>,
    }

    impl Prepared {
        /// Generates the documents of `doc` and prepares `op`.
        ///
        /// # Panics
        /// If the documents are refused: a bug in the generator or the core.
        pub fn new(op: Op, doc: Doc) -> Prepared {
            let (inputs_raw, policy_raw) = doc.documents();
            let mut prepared = Prepared {
                op,
                inputs_raw,
                inputs: None,
                policy: None,
                keys: super::keys(false),
                service: None,
            };
            match op {
                Op::Parse => {}
                Op::Compute => {
                    let inputs =
                        Inputs::parse(&prepared.inputs_raw, &Limits::UNBOUNDED).expect("inputs parse");
                    prepared.inputs = Some(Arc::new(inputs));
                    prepared.policy = Some(Policy::parse(&policy_raw).expect("policy parses"));
                }
                Op::Handler => {
                    let service = super::service();
                    let put = |url: &str, body: &[u8]| {
                        let r = service.handle(&request("PUT", url, body));
                        assert!(r.status == 201, "{url}: {}", String::from_utf8_lossy(&r.body));
                        serde_json::from_slice::<serde_json::Value>(&r.body).expect("JSON answer")
                    };
                    let i = put("/rewarder/inputs", &prepared.inputs_raw);
                    let p = put("/rewarder/policies", &policy_raw);
                    let url = format!("/rewarder/epochs/{}/compute", i["epoch"].as_str().expect("epoch"));
                    let body = serde_json::json!({
                        "inputs_cid": i["inputs_cid"], "policy_id": p["policy_id"], "policy_hash": p["policy_hash"],
                    });
                    prepared.service = Some((service, url, body.to_string().into_bytes()));
                }
            }
            prepared
        }

        /// The size of the raw inputs document.
        pub fn inputs_bytes(&self) -> usize {
            self.inputs_raw.len()
        }

        /// Runs the operation once; returns a figure of its result (payees, actors, bytes).
        ///
        /// # Panics
        /// If the operation fails on the testkit's documents.
        pub fn run(&self) -> usize {
            match self.op {
                Op::Parse => {
                    let inputs =
                        Inputs::parse(black_box(&self.inputs_raw), &Limits::UNBOUNDED).expect("parse");
                    inputs.actor_count()
                }
                Op::Compute => {
                    let (inputs, policy) =
                        (self.inputs.as_ref().expect("parsed"), self.policy.as_ref().expect("policy"));
                    let run = Run::compute(black_box(inputs), black_box(policy), "default").expect("compute");
                    black_box(self.keys.sign(run.digest_bytes()));
                    run.manifest().payees as usize
                }
                Op::Handler => {
                    let (service, url, body) = self.service.as_ref().expect("service");
                    let response: Response = service.handle(&request("POST", url, body));
                    assert!(response.status == 200, "{}", String::from_utf8_lossy(&response.body));
                    response.body.len()
                }
            }
        }
    }

    fn request<'a>(method: &'a str, url: &'a str, body: &'a [u8]) -> Request<'a> {
        Request { method, url, authorization: None, body, corr_id: "gate" }
    }
}
