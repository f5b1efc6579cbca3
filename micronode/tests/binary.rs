//! The binary as a user meets it: `--version`, `serve --help` (every knob, from the knob table),
//! help texts that name files of the repository, and `healthcheck` against a live node and a
//! closed port.

mod support;

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use rewarder_micronode::build;
use rewarder_micronode::knobs::{self, KNOBS};
use support::{Node, run_cli};

fn stdout(args: &[&str]) -> String {
    let out = run_cli(args, &[]);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8 help")
}

#[test]
fn version_names_the_version_target_and_git_revision() {
    let line = stdout(&["--version"]);
    assert_eq!(line.trim_end(), format!("rewarder-micronode {}", build::VERSION_LINE));
    assert!(line.contains(&format!("(target {}, git {})", build::TARGET, build::GIT_REVISION)), "{line}");
    let node = Node::start(&[]);
    let version = node.call("GET", "/version", &[], None).json();
    assert_eq!(version["build"]["target"], build::TARGET, "{version}");
    assert_eq!(version["build"]["git_revision"], build::GIT_REVISION, "{version}");
}

/// The variables of API.md §5's table, in its order (a row may name two).
fn api_md_knobs() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/spec/API.md");
    let text = std::fs::read_to_string(&path).expect("docs/spec/API.md");
    let section = text.split("\n## 5. Knobs").nth(1).expect("API.md has §5");
    let section = section.split("\n## ").next().unwrap_or(section);
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .flat_map(|l| {
            l.split(" | ")
                .next()
                .unwrap_or("")
                .split(", ")
                .map(|v| v.trim_matches(['|', ' ', '`']).to_owned())
        })
        .collect()
}

#[test]
fn serve_help_lists_every_knob_of_the_table_with_its_default() {
    let help = stdout(&["serve", "--help"]);
    let listed: Vec<&str> = help
        .lines()
        .filter(|l| l.starts_with("  ") && l.contains("[default: "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'))
        .collect();
    let table: Vec<&str> = KNOBS.iter().map(|k| k.env).collect();
    assert_eq!(listed, table, "serve --help vs the knob table");
    assert_eq!(listed, api_md_knobs(), "serve --help vs docs/spec/API.md §5");
    assert!(help.ends_with(&knobs::help()) || help.trim_end().ends_with(knobs::help().trim_end()), "{help}");
    assert!(help.contains("  BIND_ADDR  [default: 127.0.0.1:8080]"), "{help}");
    // Only `serve` carries the table.
    assert!(!stdout(&["compute", "--help"]).contains("BIND_ADDR  [default"));
}

#[test]
fn help_texts_name_specification_files_that_exist() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut named = 0;
    // Every subcommand the top-level help lists (so one added later is checked too).
    let top = stdout(&["--help"]);
    let commands: Vec<String> = top
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_owned)
        .collect();
    assert!(commands.len() >= 6 && commands.iter().any(|c| c == "healthcheck"), "{commands:?}");
    let mut all: Vec<Vec<&str>> = vec![vec!["--help"]];
    all.extend(commands.iter().map(|c| vec![c.as_str(), "--help"]));
    for args in &all {
        let help = stdout(args);
        for word in help.split(|c: char| c.is_whitespace() || "(),;:".contains(c)) {
            if !word.ends_with(".md") {
                continue;
            }
            let path = if word.contains('/') { repo.join(word) } else { repo.join("docs/spec").join(word) };
            assert!(path.is_file(), "{args:?} names {word}: {} does not exist", path.display());
            named += 1;
        }
    }
    assert!(named > 3, "the help texts name the specification ({named} mentions)");
}

#[test]
fn healthcheck_passes_on_a_ready_node_and_fails_on_a_closed_port() {
    let node = Node::start(&[]);
    let bind = node.addr.to_string();
    let ok = run_cli(&["healthcheck"], &[("BIND_ADDR", &bind)]);
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(ok.stdout.is_empty());

    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let started = Instant::now();
    let down = run_cli(&["healthcheck", "--timeout-ms", "1000"], &[("BIND_ADDR", &closed)]);
    assert_eq!(down.status.code(), Some(1), "{}", String::from_utf8_lossy(&down.stderr));
    assert!(String::from_utf8_lossy(&down.stderr).contains("/readyz"));
    assert!(started.elapsed() < Duration::from_secs(10));

    // A listener that never answers: the deadline ends the probe.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    let started = Instant::now();
    let hung = run_cli(&["healthcheck", "--timeout-ms", "300"], &[("BIND_ADDR", &silent_addr)]);
    assert_eq!(hung.status.code(), Some(1));
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());

    let bad = run_cli(&["healthcheck"], &[("BIND_ADDR", "nowhere")]);
    assert_eq!(bad.status.code(), Some(2), "a bad knob is a usage error");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("BIND_ADDR"));
    let bad = run_cli(&["healthcheck", "--timeout-ms", "0"], &[]);
    assert_eq!(bad.status.code(), Some(2));
}
