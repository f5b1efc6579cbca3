//! The one table of the node's knobs (API.md §5): each environment variable with its default,
//! its range and what it does. [`crate::config`] takes every default it applies from here (a
//! [`Default::Value`] is parsed exactly as a value set in the environment would be), and
//! `serve --help` prints this table ([`help`]), so the parser, the help and the spec cannot
//! drift: the tests below compare the table with the parser's lookups and with API.md §5.
//!
//! Texts are API.md's own (Markdown: `code` in backticks, **bold**); [`help`] drops the marks.

/// A knob's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Default {
    /// The value used when the variable is unset, read by the same parser as a set value.
    Value(&'static str),
    /// A default that depends on something else (another knob, the cores, the profile),
    /// applied where that is known; the text says what it is.
    Described(&'static str),
    /// Unset: the feature is off or the knob has no value.
    Unset,
}

/// One knob of API.md §5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Knob {
    /// The environment variable.
    pub env: &'static str,
    /// Its default.
    pub default: Default,
    /// The values accepted.
    pub range: &'static str,
    /// What it does.
    pub help: &'static str,
}

/// Every knob, in the order of API.md §5.
pub const KNOBS: &[Knob] = &[
    Knob {
        env: "BIND_ADDR",
        default: Default::Value("127.0.0.1:8080"),
        range: "`IP:PORT`, `[IPv6]:PORT` or `localhost:PORT`",
        help: "port 0 picks a free port",
    },
    Knob {
        env: "AUTH_KEYS",
        default: Default::Unset,
        range: "`kid:hexkey[,kid2:hexkey2…]`",
        help: "kid: 1–64 chars of `[A-Za-z0-9._-]`, unique; key: hex of ≥ 32 bytes; unset = authentication off (§3)",
    },
    Knob {
        env: "ALLOW_INSECURE_BIND",
        default: Default::Value("false"),
        range: "bool",
        help: "allows a non-loopback `BIND_ADDR` without `AUTH_KEYS`",
    },
    Knob {
        env: "TLS_CERT_FILE",
        default: Default::Unset,
        range: "PEM paths",
        help: "both or neither; both = HTTPS (rustls)",
    },
    Knob {
        env: "TLS_KEY_FILE",
        default: Default::Unset,
        range: "PEM paths",
        help: "both or neither; both = HTTPS (rustls)",
    },
    Knob {
        env: "CONCURRENCY_COMPUTE_WORKERS",
        default: Default::Described(
            "macronode: cores − 1 (at least 1), and one fewer again with `REQUIRE_PQ_ON` (at least 1)",
        ),
        range: "1–1024",
        help: "request workers of the macronode; micronode and embedded node: always 1; an explicit value is used as given",
    },
    Knob {
        env: "MAX_INFLIGHT",
        default: Default::Value("512"),
        range: "1–2^32−1",
        help: "**hot**; computes in flight per node; beyond: `503 overloaded`",
    },
    Knob {
        env: "TENANT_RPS_MAX",
        default: Default::Value("100"),
        range: "1–2^32−1",
        help: "**hot**; per-tenant token bucket rate and burst; beyond: `429`",
    },
    Knob {
        env: "WORK_QUEUE_MAX",
        default: Default::Value("4096"),
        range: "1–2^32−1",
        help: "**hot**; requests waiting for a worker; beyond: `503`, `rejected_total{reason=\"queue_full\"}`",
    },
    Knob {
        env: "REQ_BODY_MAX_BYTES",
        default: Default::Value("1048576"),
        range: "≥ 1",
        help: "every body but inputs uploads (compute, policies, …)",
    },
    Knob {
        env: "INPUTS_MAX_BYTES",
        default: Default::Value("67108864"),
        range: "≥ 1",
        help: "`PUT /rewarder/inputs` bodies",
    },
    Knob {
        env: "DECOMP_RATIO_MAX",
        default: Default::Value("10"),
        range: "1–1,000,000",
        help: "most inflated bytes per gzip byte",
    },
    Knob {
        env: "REQUIRE_PQ_ON",
        default: Default::Value("false"),
        range: "bool",
        help: "adds ML-DSA-65 signatures (CALCULUS.md §4.6)",
    },
    Knob {
        env: "SIGNING_KEY_FILE",
        default: Default::Unset,
        range: "path",
        help: "the node's signing identity (below); unset: fresh random keys per process (public keys logged and listed on `/version` and `/rewarder/keys`)",
    },
    Knob {
        env: "SIGNING_KEYS_RETIRED",
        default: Default::Unset,
        range: "public keys in hex, separated by `,` or whitespace",
        help: "keys the node signed with before a rotation, listed as `retired` on `/rewarder/keys` (below); each once, never the active key",
    },
    Knob {
        env: "AMNESIA_DIR",
        default: Default::Described("`/dev/shm`"),
        range: "path of a directory (the *root*)",
        help: "micronode only; the node creates `rewarder-<pid>-<random>` inside (mode 0700, files 0600, no symlink followed) and removes it on exit; at start it removes the directories of nodes that are gone (their `flock` on `.lock` is free); refused (exit 2) when a symlink, when others may write to it without the sticky bit, or when not tmpfs; ignored (with a warning) by the macronode",
    },
    Knob {
        env: "AMNESIA_ALLOW_DISK",
        default: Default::Value("false"),
        range: "bool",
        help: "accepts an `AMNESIA_DIR` that is not tmpfs, with a warning in the log",
    },
    Knob {
        env: "RUNS_MAX",
        default: Default::Value("1024"),
        range: "≥ 1",
        help: "stored runs kept; when full, the tenant holding the most runs loses its least recently used (§1, stores shared between tenants)",
    },
    Knob {
        env: "RUNS_MAX_BYTES",
        default: Default::Value("16777216"),
        range: "≥ 1",
        help: "estimated bytes of stored runs kept (about 112 bytes per payee — the payee and its rendered allocation row, kept so a repeated answer is not rendered again — plus 2 KiB per run); shared between tenants as `RUNS_MAX`",
    },
    Knob {
        env: "DOCUMENTS_MAX_BYTES",
        default: Default::Value("268435456"),
        range: "≥ 1",
        help: "estimated bytes of parsed documents kept in memory (shared between tenants, §1), and the byte budget of the amnesia directory",
    },
    Knob {
        env: "TENANT_STORE_MAX_BYTES",
        default: Default::Unset,
        range: "≥ 1",
        help: "estimated bytes of parsed documents one tenant keeps; beyond, its own least recently used go; one document heavier: `413 quota_exceeded`; unset = no quota",
    },
    Knob {
        env: "TENANT_RUNS_MAX",
        default: Default::Unset,
        range: "≥ 1",
        help: "stored runs one tenant keeps; beyond, its own least recently used go (never a run with intents unanswered); unset = no quota",
    },
    Knob {
        env: "CONNECTIONS_MAX",
        default: Default::Value("128"),
        range: "1–65,536",
        help: "client connections held at once",
    },
    Knob {
        env: "CONNECTIONS_PER_SOURCE_MAX",
        default: Default::Described("3/4 of `CONNECTIONS_MAX`"),
        range: "1–65,536",
        help: "client connections one address may hold; set it to `CONNECTIONS_MAX` behind a load balancer (every connection then comes from its address)",
    },
    Knob {
        env: "IDLE_TIMEOUT_MS",
        default: Default::Value("30000"),
        range: "1–3,600,000",
        help: "how long a kept-alive connection may wait for its next request",
    },
    Knob {
        env: "IDLE_TIMEOUT_CROWDED_MS",
        default: Default::Value("1000"),
        range: "1–3,600,000",
        help: "the same while the node holds ≥ 3/4 of `CONNECTIONS_MAX`",
    },
    Knob {
        env: "LEDGER_URL",
        default: Default::Unset,
        range: "`http://HOST[:PORT][/PATH]` or `https://…`",
        help: "unset = compute-only; trailing `/` removed",
    },
    Knob {
        env: "LEDGER_MAX_RETRIES",
        default: Default::Value("2"),
        range: "0–100",
        help: "retries after a failed attempt",
    },
    Knob {
        env: "LEDGER_DEADLINE_MS",
        default: Default::Value("1000"),
        range: "1–600,000",
        help: "per attempt, end to end",
    },
    Knob {
        env: "LEDGER_BATCH_MAX",
        default: Default::Value("1000"),
        range: "1–1,000,000",
        help: "intents per request",
    },
    Knob {
        env: "LEDGER_P95_BUDGET_MS",
        default: Default::Value("100"),
        range: "1–600,000",
        help: "brownout threshold",
    },
    Knob {
        env: "LEDGER_WINDOW_S",
        default: Default::Value("600"),
        range: "1–86,400",
        help: "brownout window",
    },
    Knob {
        env: "LEDGER_QUARANTINE_MAX",
        default: Default::Value("100000"),
        range: "1–100,000,000",
        help: "intents the quarantine queue holds before new non-dry runs are refused `503`",
    },
    Knob {
        env: "LEDGER_QUARANTINE_ONLY",
        default: Default::Value("false"),
        range: "bool",
        help: "**hot**; holds every intent in the queue and sends nothing (§4)",
    },
    Knob {
        env: "LEDGER_STOP_DRAIN_S",
        default: Default::Value("30"),
        range: "0–86,400",
        help: "after SIGTERM/SIGINT and the requests in flight, how long the node keeps draining its queue",
    },
    Knob {
        env: "STATE_PATH",
        default: Default::Unset,
        range: "path of a file",
        help: "macronode only (the micronode refuses it); needs `LEDGER_URL`; the durable queue (§4.1); unset = the queue lives in memory",
    },
    Knob {
        env: "LEDGER_CA_FILE",
        default: Default::Unset,
        range: "PEM path",
        help: "the only roots trusted for an `https://` ledger",
    },
    Knob {
        env: "HOT_KNOBS_FILE",
        default: Default::Unset,
        range: "path",
        help: "file the hot knobs are read from (below)",
    },
    Knob {
        env: "LOG_FORMAT",
        default: Default::Value("text"),
        range: "`text` or `json`",
        help: "logs go to stderr",
    },
    Knob {
        env: "LOG",
        default: Default::Value("info"),
        range: "a `tracing` filter directive",
        help: "e.g. `debug`, `rewarder_micronode=trace`",
    },
    Knob {
        env: "TRACE_SAMPLE",
        default: Default::Value("0.01"),
        range: "a fraction from 0 to 1 (`0`, `0.05`, `1`)",
        help: "**hot**; the share of requests traced (below)",
    },
];

/// The knob named `env`, if there is one.
pub fn knob(env: &str) -> Option<&'static Knob> {
    KNOBS.iter().find(|k| k.env == env)
}

/// The default value the parser applies to `env` when it is unset: `Some` only for a
/// [`Default::Value`].
pub fn default_value(env: &str) -> Option<&'static str> {
    match knob(env)?.default {
        Default::Value(v) => Some(v),
        Default::Described(_) | Default::Unset => None,
    }
}

/// The knobs as `serve --help` prints them after the options: one paragraph per knob, its
/// variable, default and range on the first line, what it does indented below.
pub fn help() -> String {
    let plain = |s: &str| s.replace('`', "").replace("**", "");
    let mut out = String::from(
        "Knobs (environment variables, docs/spec/API.md §5; an empty value counts as unset; the\n\
         hot ones are re-read on SIGHUP, SIGUSR1 or POST /rewarder/admin/reload):\n",
    );
    for k in KNOBS {
        let default = match k.default {
            Default::Value(v) => v.to_owned(),
            Default::Described(text) => plain(text),
            Default::Unset => "unset".to_owned(),
        };
        out.push_str(&format!("\n  {}  [default: {default}]  [{}]\n", k.env, plain(k.range)));
        out.push_str(&format!("      {}\n", plain(k.help)));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeSet;

    use rewarder_core::service::HotKnobs;

    use super::*;
    use crate::config::NodeConfig;

    /// The variables `NodeConfig::from_lookup` asks for, with `set` in the environment.
    fn looked_up(set: &[(&str, &str)]) -> BTreeSet<String> {
        let asked = RefCell::new(BTreeSet::new());
        let _ = NodeConfig::from_lookup(|name| {
            asked.borrow_mut().insert(name.to_owned());
            set.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
        });
        asked.into_inner()
    }

    #[test]
    fn the_parser_reads_exactly_the_knobs_of_the_table() {
        // STATE_PATH with LEDGER_URL, so no early refusal hides a later lookup.
        let asked = looked_up(&[("LEDGER_URL", "http://ledger"), ("STATE_PATH", "/v/q.db")]);
        let table: BTreeSet<String> = KNOBS.iter().map(|k| k.env.to_owned()).collect();
        assert_eq!(asked, table, "knobs parsed vs knobs in the table");
        assert_eq!(table.len(), KNOBS.len(), "a knob is listed twice");
    }

    #[test]
    fn every_default_value_parses_and_is_what_an_unset_variable_gives() {
        let unset = NodeConfig::from_lookup(|_| None).expect("the defaults are valid");
        for knob in KNOBS {
            if let Default::Value(value) = knob.default {
                let set = NodeConfig::from_lookup(|name| (name == knob.env).then(|| value.to_owned()));
                assert_eq!(set.as_ref(), Ok(&unset), "{}={value}", knob.env);
            }
        }
        assert_eq!(unset.hot, HotKnobs::default(), "core's hot defaults are the table's");
        assert_eq!(unset.trace_sample_ppm, crate::trace::TRACE_SAMPLE_DEFAULT_PPM);
        assert_eq!(default_value("BIND_ADDR"), Some(crate::config::BIND_ADDR_DEFAULT));
        assert_eq!(
            default_value("CONNECTIONS_MAX"),
            Some(crate::config::CONNECTIONS_MAX_DEFAULT.to_string().as_str())
        );
        assert_eq!(unset.connections_per_source_max, 96, "3/4 of CONNECTIONS_MAX");
        assert_eq!(unset.compute_workers, None, "the profile decides");
        assert_eq!(unset.amnesia_dir, None, "amnesia uses /dev/shm");
    }

    #[test]
    fn a_bad_default_would_name_its_variable() {
        // What Env does with a table value is what it does with a set value: prove the
        // error path the defaults go through.
        let e = NodeConfig::from_lookup(|name| (name == "LEDGER_BATCH_MAX").then(|| "0".to_owned()));
        assert_eq!(e.unwrap_err().var, "LEDGER_BATCH_MAX");
    }

    /// The rows of API.md §5's table, one per variable: (env, default, range, notes).
    fn api_md_rows() -> Vec<(String, String, String, String)> {
        let text = include_str!("../../docs/spec/API.md");
        let section = text.split("\n## 5. Knobs").nth(1).expect("API.md has §5");
        let section = section.split("\n## ").next().unwrap_or(section);
        let mut rows = Vec::new();
        for line in section.lines().filter(|l| l.starts_with("| `")) {
            let cells: Vec<&str> = line.trim().trim_matches('|').split(" | ").map(str::trim).collect();
            assert_eq!(cells.len(), 4, "{line}");
            for env in cells[0].split(", ") {
                let env = env.trim_matches('`').to_owned();
                rows.push((env, cells[1].to_owned(), cells[2].to_owned(), cells[3].to_owned()));
            }
        }
        rows
    }

    #[test]
    fn the_table_is_api_md_section_5() {
        let rows = api_md_rows();
        let ours: Vec<(String, String, String, String)> = KNOBS
            .iter()
            .map(|k| {
                let default = match k.default {
                    Default::Value(v) => format!("`{v}`"),
                    Default::Described(text) => text.to_owned(),
                    Default::Unset => "unset".to_owned(),
                };
                (k.env.to_owned(), default, k.range.to_owned(), k.help.to_owned())
            })
            .collect();
        assert_eq!(ours.len(), rows.len(), "knobs in the table vs rows of API.md §5");
        for (ours, theirs) in ours.iter().zip(&rows) {
            assert_eq!(ours, theirs, "knob table vs API.md §5");
        }
    }

    #[test]
    fn the_help_lists_every_knob_with_its_default_once() {
        let help = help();
        let listed: Vec<&str> = help
            .lines()
            .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        let table: Vec<&str> = KNOBS.iter().map(|k| k.env).collect();
        assert_eq!(listed, table);
        assert!(help.contains("  LEDGER_BATCH_MAX  [default: 1000]  [1–1,000,000]\n"), "{help}");
        assert!(help.contains("  AUTH_KEYS  [default: unset]"), "{help}");
        assert!(!help.contains('`') && !help.contains("**"), "no Markdown in the help");
    }
}
