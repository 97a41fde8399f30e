//! The two oracle processes: spawned once each, cases streamed through them.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::compare::Outcome;
use crate::gen::Case;

pub const ORACLES: [&str; 2] = ["scim-patch", "scim2-models"];

/// Where `scripts/patch-oracles` installed the oracles, or a panic telling
/// how to install them: the suite never skips silently.
pub fn install_dir() -> PathBuf {
    let hint = "the PATCH conformance suite needs its oracle engines: run\n\n    \
                export SCIMTRAIL_PATCH_ORACLES=$(scripts/patch-oracles)\n\n\
                (scripts/test does this before cargo test)";
    let dir = std::env::var_os("SCIMTRAIL_PATCH_ORACLES")
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("SCIMTRAIL_PATCH_ORACLES is not set: {hint}"));
    for need in [
        "node/node_modules/scim-patch/package.json",
        "venv/bin/python",
    ] {
        assert!(
            dir.join(need).exists(),
            "{} is missing in SCIMTRAIL_PATCH_ORACLES={}: {hint}",
            need,
            dir.display()
        );
    }
    dir
}

pub fn versions(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("versions.json"))
        .unwrap_or_else(|_| "(no versions.json)".into())
        .trim()
        .to_string()
}

fn command(oracle: &str, dir: &Path) -> Command {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("patch");
    match oracle {
        "scim-patch" => {
            let mut c = Command::new("node");
            c.arg(here.join("oracle-scim-patch.js"))
                .env("NODE_PATH", dir.join("node/node_modules"));
            c
        }
        _ => {
            let mut c = Command::new(dir.join("venv/bin/python"));
            c.arg(here.join("oracle_scim2_models.py"))
                .env("PYTHONDONTWRITEBYTECODE", "1");
            c
        }
    }
}

/// Every case through one oracle, in order; the outcomes and the time taken.
pub fn run(oracle: &str, dir: &Path, cases: &[Case]) -> (Vec<Outcome>, Duration) {
    let start = Instant::now();
    let mut child = command(oracle, dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start the {oracle} oracle: {e}"));
    let mut stdin = child.stdin.take().expect("piped stdin");
    let lines: Vec<String> = cases.iter().map(Case::oracle_line).collect();
    // Written from another thread: the oracle answers while it reads, and both
    // pipes would fill up if this thread wrote everything first.
    let writer = std::thread::spawn(move || {
        for line in lines {
            if writeln!(stdin, "{line}").is_err() {
                break;
            }
        }
    });
    let stdout = child.stdout.take().expect("piped stdout");
    let mut outcomes = Vec::with_capacity(cases.len());
    for (case, line) in cases.iter().zip(BufReader::new(stdout).lines()) {
        let line = line.unwrap_or_else(|e| panic!("reading the {oracle} oracle: {e}"));
        let answer: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
            panic!("the {oracle} oracle wrote a line that is not JSON ({e}): {line}")
        });
        assert_eq!(
            answer.get("id").and_then(Value::as_str),
            Some(case.id.as_str()),
            "the {oracle} oracle answered out of order: {line}"
        );
        outcomes.push(Outcome::from_oracle(&answer));
    }
    writer.join().expect("writer thread");
    let status = child.wait().expect("oracle exit");
    assert_eq!(
        outcomes.len(),
        cases.len(),
        "the {oracle} oracle answered {} of {} cases and exited with {status}",
        outcomes.len(),
        cases.len()
    );
    (outcomes, start.elapsed())
}
