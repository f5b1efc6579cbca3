//! `demo`: a micronode on loopback, fed a generated S-scale epoch through real HTTP (ureq), with
//! a readable summary and the curl lines for the next steps; then it keeps serving until
//! Ctrl-C. It is a client of the public API and nothing more.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::config::NodeConfig;
use crate::node::{self, Node, NodeError, Signals};

/// The epoch label of the demo.
pub const EPOCH: &str = "demo";

/// Runs the demo; returns when the node is stopped by a signal.
pub fn run() -> Result<(), NodeError> {
    let signals = Signals::register()?;
    let mut config = NodeConfig::from_env().map_err(|e| NodeError::Config(e.to_string()))?;
    // The demo talks to itself over plain HTTP on loopback.
    config.tls = None;
    node::init_logging(&config);
    let bind = if config.bind_addr.ip().is_loopback() {
        config.bind_addr
    } else {
        SocketAddr::from(([127, 0, 0, 1], 8080))
    };
    let node = match Node::start(&config, bind) {
        Ok(node) => node,
        Err(NodeError::AddrInUse(_)) => {
            tracing::warn!(%bind, "address busy; using a free port");
            Node::start(&config, SocketAddr::from(([127, 0, 0, 1], 0)))?
        }
        Err(e) => return Err(e),
    };
    let token = config.auth_keys.as_ref().and_then(|keys| keys.first()).map(|(kid, key)| {
        let exp =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
                + 3600;
        (kid.clone(), rewarder_core::service::auth::mint(kid, key, "demo", "compute read admin", exp, None))
    });
    let client = Client::new(node.url(), token.as_ref().map(|(_, t)| t.clone()));
    match walk_through(&client, node.url(), token.as_ref().map(|(kid, _)| kid.as_str())) {
        Ok(summary) => println!("{summary}"),
        Err(e) => {
            let _ = node.shutdown();
            return Err(NodeError::Runtime(format!("demo failed: {e}")));
        }
    }
    println!("Serving until Ctrl-C.");
    node.run_until_signalled(&signals)
}

/// A tiny JSON client over ureq.
struct Client {
    agent: ureq::Agent,
    base: String,
    token: Option<String>,
}

/// One exchange: status, JSON body, round-trip milliseconds.
struct Answer {
    status: u16,
    body: Value,
    ms: f64,
}

impl Client {
    fn new(base: &str, token: Option<String>) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        Client { agent, base: base.to_owned(), token }
    }

    fn send(&self, method: &str, path: &str, body: Option<&[u8]>) -> Result<Answer, String> {
        let url = format!("{}{path}", self.base);
        let started = Instant::now();
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let response = match body {
            Some(body) => {
                let mut rb = match method {
                    "PUT" => self.agent.put(&url),
                    _ => self.agent.post(&url),
                };
                rb = rb.header("Content-Type", "application/json");
                if let Some(a) = &auth {
                    rb = rb.header("Authorization", a);
                }
                rb.send(body)
            }
            None => {
                let mut rb = self.agent.get(&url);
                if let Some(a) = &auth {
                    rb = rb.header("Authorization", a);
                }
                rb.call()
            }
        };
        let mut response = response.map_err(|e| format!("{method} {path}: {e}"))?;
        let status = response.status().as_u16();
        let bytes = response
            .body_mut()
            .with_config()
            .limit(256 << 20)
            .read_to_vec()
            .map_err(|e| format!("{method} {path}: reading the answer: {e}"))?;
        let ms = started.elapsed().as_secs_f64() * 1e3;
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Ok(Answer { status, body, ms })
    }

    fn expect(&self, method: &str, path: &str, body: Option<&[u8]>, ok: &[u16]) -> Result<Answer, String> {
        let answer = self.send(method, path, body)?;
        if ok.contains(&answer.status) {
            Ok(answer)
        } else {
            Err(format!("{method} {path} answered {}: {}", answer.status, answer.body))
        }
    }
}

fn text<'a>(v: &'a Value, key: &str) -> Result<&'a str, String> {
    v[key].as_str().ok_or_else(|| format!("the answer has no {key:?}: {v}"))
}

/// PUT inputs, PUT policy, POST compute; the summary to print.
fn walk_through(client: &Client, url: &str, kid: Option<&str>) -> Result<String, String> {
    let generated = Instant::now();
    let (inputs, policy) = rewarder_gen::generate(rewarder_gen::Scale::S, EPOCH, 1);
    let generate_ms = generated.elapsed().as_secs_f64() * 1e3;

    let put_inputs = client.expect("PUT", "/rewarder/inputs", Some(&inputs), &[200, 201])?;
    let inputs_cid = text(&put_inputs.body, "inputs_cid")?.to_owned();
    let epoch = text(&put_inputs.body, "epoch")?.to_owned();
    let put_policy = client.expect("PUT", "/rewarder/policies", Some(&policy), &[200, 201])?;
    let policy_hash = text(&put_policy.body, "policy_hash")?.to_owned();
    let policy_id = text(&put_policy.body, "policy_id")?.to_owned();
    let request =
        serde_json::json!({"inputs_cid": inputs_cid, "policy_id": policy_id, "policy_hash": policy_hash});
    let compute_path = format!("/rewarder/epochs/{epoch}/compute");
    let compute = client.expect("POST", &compute_path, Some(request.to_string().as_bytes()), &[200, 202])?;
    let result = &compute.body;
    let manifest = &result["manifest"];

    let mut payees: Vec<(&str, u128)> = result["allocations"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| Some((x["actor"].as_str()?, x["amount_minor"].as_str()?.parse().ok()?)))
                .collect()
        })
        .unwrap_or_default();
    payees.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let first_actor = payees.first().map_or("acct:…", |p| p.0).to_owned();

    let mut out = String::new();
    let line = |out: &mut String, s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(&mut out, format!("svc-rewarder micronode demo — {url}"));
    line(
        &mut out,
        format!(
            "  epoch            {epoch} (S scale: {} bytes of inputs, generated in {generate_ms:.1} ms)",
            inputs.len()
        ),
    );
    line(&mut out, format!("  inputs_cid       {inputs_cid}"));
    line(&mut out, format!("  policy           {policy_id} {policy_hash}"));
    line(&mut out, format!("  payees           {}", manifest["payees"]));
    line(&mut out, "  top payees:".to_owned());
    for (actor, amount) in payees.iter().take(5) {
        line(&mut out, format!("    {actor:<24} {amount:>16}"));
    }
    let field = |k: &str| manifest[k].as_str().unwrap_or("?").to_owned();
    line(&mut out, format!("  pool             {}", field("pool_minor")));
    line(&mut out, format!("  payout total     {}", field("payout_total_minor")));
    line(&mut out, format!("  residual         {}", field("residual_minor")));
    line(&mut out, format!("  allocations root {}", field("allocations_root")));
    line(&mut out, format!("  manifest digest  {}", result["manifest_digest"].as_str().unwrap_or("?")));
    line(&mut out, format!("  ledger           {}", result["ledger"]["status"].as_str().unwrap_or("?")));
    line(
        &mut out,
        format!(
            "  timings          PUT inputs {:.1} ms · PUT policy {:.1} ms · compute {:.1} ms (core {} ms)",
            put_inputs.ms, put_policy.ms, compute.ms, result["timing"]["compute_ms"]
        ),
    );
    line(&mut out, String::new());
    line(&mut out, "Next steps:".to_owned());
    let auth = match kid {
        Some(kid) => {
            let exe = std::env::current_exe()
                .map_or_else(|_| "rewarder-micronode".to_owned(), |p| p.display().to_string());
            line(&mut out, format!("  (with the same AUTH_KEYS exported; tokens from `{exe} mint-token`)"));
            format!(
                " -H \"Authorization: Bearer $({exe} mint-token --kid {kid} --tenant demo --scope read)\""
            )
        }
        None => String::new(),
    };
    line(&mut out, format!("  curl -s{auth} {url}/rewarder/epochs/{epoch}"));
    line(&mut out, format!("  curl -s{auth} {url}/rewarder/epochs/{epoch}/proof/{first_actor}"));
    line(&mut out, format!("  curl -s {url}/metrics"));
    Ok(out)
}
