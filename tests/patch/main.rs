//! Differential conformance suite for scimtrail's RFC 7644 PATCH engine.
//!
//! Two tests (see docs/patch-conformance.md):
//! - `hard_cases_match_the_rfc`: the hand-written cases of `cases.json`, each
//!   with the result (or scimType) the RFC asks for, asserted against
//!   scimtrail's engine; the oracles' answers are reported beside it;
//! - `scimtrail_agrees_with_the_oracles`: a few thousand seeded cases through
//!   scimtrail (`Compat::Strict`) and two independent engines, npm's
//!   `scim-patch` and PyPI's `scim2-models`. A disagreement must be explained
//!   by an entry of `deviations.json`; an entry that explains nothing is stale.
//!
//! The oracles are installed by `scripts/patch-oracles`, whose output goes in
//! `SCIMTRAIL_PATCH_ORACLES` (scripts/test does it). Environment:
//! `SCIMTRAIL_PATCH_CASES` (default 3000), `SCIMTRAIL_PATCH_SEED`,
//! `SCIMTRAIL_PATCH_SHOW=<case id>[,<case id>...]` prints those cases in full,
//! `SCIMTRAIL_PATCH_EXAMPLES` (default 5) unexplained examples shown per
//! oracle and kind, `SCIMTRAIL_PATCH_DUMP=<file>` writes every case and every
//! answer (normalised) as JSON lines.

mod compare;
mod engine;
mod gen;
mod oracles;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use serde_json::{json, Value};

use compare::{differ, normalise, result_diff, AllowList, Kind, Outcome, Tally};
use engine::Engine;
use gen::Case;
use oracles::ORACLES;

const DEFAULT_CASES: usize = 3000;
const DEFAULT_SEED: u64 = 0x5C1_7A11;

/// Printed even when the test passes (libtest captures `println!`).
fn say(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{text}");
}

fn env_num<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number")),
        Err(_) => default,
    }
}

fn here() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/patch"))
}

fn read_json(name: &str) -> Value {
    let path = here().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn show_ids() -> BTreeSet<String> {
    std::env::var("SCIMTRAIL_PATCH_SHOW")
        .map(|s| {
            s.split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

fn show_case(case: &Case, outcomes: &[(&str, &Outcome)]) -> String {
    let mut s = format!(
        "  case {} [{}] {}\n    resource: {}\n    request:  {}\n",
        case.id,
        case.resource_type,
        case.tags.iter().cloned().collect::<Vec<_>>().join(" "),
        case.resource,
        case.request["Operations"]
    );
    let brief = |o: &Outcome| match o {
        Outcome::Ok(_) => "ok".to_string(),
        other => other.display(),
    };
    for (name, o) in outcomes {
        s.push_str(&format!("    {name:<13} {}\n", brief(o)));
    }
    // Successful answers: where they differ, rather than whole resources.
    if let Some((first, Outcome::Ok(a))) = outcomes.first().map(|(n, o)| (*n, *o)) {
        for (name, o) in &outcomes[1..] {
            if let Outcome::Ok(b) = o {
                let d = result_diff(a, b);
                if !d.is_empty() {
                    s.push_str(&format!("    {first} | {name} differ on:\n      {d}\n"));
                }
            }
        }
        s.push_str(&format!(
            "    {first} result: {}\n",
            serde_json::to_string(&normalise(a)).unwrap_or_default()
        ));
    }
    s
}

fn write_report(name: &str, report: &Value) -> String {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("patch-conformance");
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(name);
    let text = match report {
        Value::String(s) => s.clone(),
        v => serde_json::to_string_pretty(v).unwrap_or_default(),
    };
    let _ = std::fs::write(&path, text);
    path.display().to_string()
}

// ------------------------------------------------------------------ hard cases

struct HardCase {
    case: Case,
    lenient: bool,
    expect: Outcome,
    rfc: String,
    note: String,
}

/// What a hard case expects: `{"error": scimType | [scimTypes]}`,
/// `{"result": resource}` or `{"changes": {top-level attributes}}`.
fn expectation(id: &str, field: &str, expect: &Value, resource: &Value) -> Outcome {
    if let Some(t) = expect.get("error") {
        // One scimType, or a list of those the RFC allows (joined by `|`).
        let types: Vec<&str> = match t {
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            t => t.as_str().into_iter().collect(),
        };
        assert!(
            !types.is_empty(),
            "cases.json {id}: {field}.error is a scimType or a list of them"
        );
        Outcome::Err {
            scim_type: types.join("|"),
            detail: String::new(),
        }
    } else if let Some(r) = expect.get("result") {
        Outcome::Ok(r.clone())
    } else if let Some(changes) = expect.get("changes").and_then(Value::as_object) {
        // The resource with these top-level attributes set (null: unassigned).
        let mut r = resource.clone();
        for (k, v) in changes {
            r[k.as_str()] = v.clone();
        }
        Outcome::Ok(r)
    } else {
        panic!("cases.json {id}: {field} needs error, result or changes")
    }
}

/// The cases of `cases.json`. A `"compat": "lenient"` case documents one of
/// the engine's Lenient deviations and must also say, in `expect_strict`,
/// what `Compat::Strict` answers to the same request: it becomes two cases,
/// `<id>` (lenient) and `<id>/strict`.
fn hard_cases() -> Vec<HardCase> {
    let file = read_json("cases.json");
    let fixtures = file["fixtures"].as_object().cloned().unwrap_or_default();
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for c in file["cases"]
        .as_array()
        .expect("cases.json: cases is an array")
    {
        let id = c["id"]
            .as_str()
            .expect("cases.json: every case has an id")
            .to_string();
        assert!(seen.insert(id.clone()), "cases.json: id {id} is used twice");
        let resource = match &c["resource"] {
            Value::String(name) => fixtures
                .get(name)
                .cloned()
                .unwrap_or_else(|| panic!("cases.json {id}: no fixture {name}")),
            v => v.clone(),
        };
        let request = match (&c["request"], &c["operations"]) {
            (Value::Null, ops) => gen::patch_request(ops.as_array().cloned().unwrap_or_default()),
            (r, _) => r.clone(),
        };
        let lenient = match c["compat"].as_str() {
            None | Some("strict") => false,
            Some("lenient") => true,
            Some(other) => panic!("cases.json {id}: compat is strict or lenient, not {other}"),
        };
        let expect = expectation(&id, "expect", &c["expect"], &resource);
        let strict_twin = match (&c["expect_strict"], lenient) {
            (Value::Null, true) => panic!(
                "cases.json {id}: a lenient case says what Compat::Strict answers (expect_strict)"
            ),
            (Value::Null, false) => None,
            (_, false) => panic!("cases.json {id}: expect_strict is for lenient cases"),
            (e, true) => Some(expectation(&id, "expect_strict", e, &resource)),
        };
        let tags: BTreeSet<String> = c["tags"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let rfc = c["rfc"]
            .as_str()
            .expect("cases.json: every case cites the RFC")
            .to_string();
        let note = c["note"].as_str().unwrap_or("").to_string();
        let case = Case {
            id: id.clone(),
            tags,
            resource_type: c["resource_type"].as_str().unwrap_or("User").to_string(),
            resource,
            request,
        };
        let twin = strict_twin.map(|expect| HardCase {
            case: Case {
                id: format!("{id}/strict"),
                ..case.clone()
            },
            lenient: false,
            expect,
            rfc: rfc.clone(),
            note: note.clone(),
        });
        out.push(HardCase {
            case,
            lenient,
            expect,
            rfc,
            note,
        });
        out.extend(twin);
    }
    out
}

/// Whether an answer is the one a hard case expects (an expected error may
/// list several scimTypes the RFC allows, joined by `|`).
fn meets(expect: &Outcome, got: &Outcome) -> bool {
    match (expect, got) {
        (
            Outcome::Err {
                scim_type: want, ..
            },
            Outcome::Err {
                scim_type: have, ..
            },
        ) => want.split('|').any(|w| w == have),
        _ => differ(expect, got).is_none(),
    }
}

#[test]
fn hard_cases_match_the_rfc() {
    let dir = oracles::install_dir();
    let hard = hard_cases();
    let engine = Engine::new();
    let cases: Vec<Case> = hard.iter().map(|h| h.case.clone()).collect();
    let answers: Vec<Vec<Outcome>> = std::thread::scope(|s| {
        let handles: Vec<_> = ORACLES
            .iter()
            .map(|o| s.spawn(|| oracles::run(o, &dir, &cases).0))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("oracle thread"))
            .collect()
    });

    let mut failures = Vec::new();
    let mut rows = Vec::new();
    let mut oracle_right = BTreeMap::<&str, usize>::new();
    let width = hard.iter().map(|h| h.case.id.len()).max().unwrap_or(0);
    for (i, h) in hard.iter().enumerate() {
        let ours = engine.apply(
            &h.case.resource_type,
            &h.case.resource,
            &h.case.request,
            h.lenient,
        );
        let ok = meets(&h.expect, &ours);
        let mut row = format!(
            "{:<width$} {:<8} {:<5}",
            h.case.id,
            if h.lenient { "lenient" } else { "strict" },
            if ok { "ok" } else { "FAIL" }
        );
        for (o, outs) in ORACLES.iter().zip(&answers) {
            let right = meets(&h.expect, &outs[i]);
            if right {
                *oracle_right.entry(o).or_default() += 1;
            }
            row.push_str(&format!(
                " {o}:{:<22}",
                if right {
                    "as RFC".to_string()
                } else {
                    outs[i].short()
                }
            ));
        }
        rows.push(row);
        if !ok {
            failures.push(format!(
                "{}\n    RFC: {}\n    why: {}\n    expected: {}\n{}",
                h.case.id,
                h.rfc,
                h.note,
                h.expect.display(),
                show_case(
                    &h.case,
                    &[
                        ("scimtrail", &ours),
                        (ORACLES[0], &answers[0][i]),
                        (ORACLES[1], &answers[1][i])
                    ]
                )
            ));
        }
    }
    say(&format!(
        "\nPATCH hard cases (tests/patch/cases.json), oracles {}:",
        oracles::versions(&dir)
    ));
    for r in &rows {
        say(&format!("  {r}"));
    }
    say(&format!(
        "  {} cases: scimtrail as the RFC on {}, {} on {}, {} on {}",
        hard.len(),
        hard.len() - failures.len(),
        ORACLES[0],
        oracle_right.get(ORACLES[0]).unwrap_or(&0),
        ORACLES[1],
        oracle_right.get(ORACLES[1]).unwrap_or(&0)
    ));
    assert!(
        failures.is_empty(),
        "{} hard case(s) where scimtrail does not do what the RFC asks:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------- differential

#[test]
fn scimtrail_agrees_with_the_oracles() {
    let dir = oracles::install_dir();
    let allow: AllowList =
        serde_json::from_value(read_json("deviations.json")).expect("deviations.json");
    let mut ids = BTreeSet::new();
    for d in &allow.deviations {
        assert!(
            ids.insert(d.id.as_str()),
            "deviations.json: id {} is used twice",
            d.id
        );
        assert!(
            ORACLES.contains(&d.oracle.as_str()),
            "deviations.json {}: unknown oracle {}",
            d.id,
            d.oracle
        );
    }
    let count: usize = env_num("SCIMTRAIL_PATCH_CASES", DEFAULT_CASES);
    let seed: u64 = env_num("SCIMTRAIL_PATCH_SEED", DEFAULT_SEED);
    let examples: usize = env_num("SCIMTRAIL_PATCH_EXAMPLES", 5);
    let show = show_ids();

    let t0 = Instant::now();
    let cases = gen::generate(seed, count);
    let gen_time = t0.elapsed();

    // The oracles run in their own processes while this thread runs scimtrail.
    let engine = Engine::new();
    let (answers, ours, lenient, ours_time) = std::thread::scope(|s| {
        let handles: Vec<_> = ORACLES
            .iter()
            .map(|o| s.spawn(|| oracles::run(o, &dir, &cases)))
            .collect();
        let t = Instant::now();
        let ours: Vec<Outcome> = cases
            .iter()
            .map(|c| engine.apply(&c.resource_type, &c.resource, &c.request, false))
            .collect();
        let lenient: Vec<Outcome> = cases
            .iter()
            .map(|c| engine.apply(&c.resource_type, &c.resource, &c.request, true))
            .collect();
        let ours_time = t.elapsed();
        let answers: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().expect("oracle thread"))
            .collect();
        (answers, ours, lenient, ours_time)
    });

    // A resource an oracle cannot read is a generator bug, not an engine answer.
    for (o, (outs, _)) in ORACLES.iter().zip(&answers) {
        if let Some((c, out)) = cases.iter().zip(outs).find(|(_, out)| matches!(out, Outcome::Err { scim_type, .. } if scim_type.starts_with("resource"))) {
            panic!("the generator made a resource {o} cannot read:\n{}", show_case(c, &[(o, out)]));
        }
    }

    let mut tally = Tally {
        cases: cases.len(),
        ..Tally::default()
    };
    // (oracle, kind) -> examples; deviation id -> example case ids.
    let mut unexplained: BTreeMap<(String, Kind), Vec<String>> = BTreeMap::new();
    let mut allowed_examples: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut oracles_agree = 0;
    let mut by_tag_unexplained: BTreeMap<String, usize> = BTreeMap::new();
    for (i, case) in cases.iter().enumerate() {
        let st = &ours[i];
        if differ(&answers[0].0[i], &answers[1].0[i]).is_none() {
            oracles_agree += 1;
        }
        for (o, (outs, _)) in ORACLES.iter().zip(&answers) {
            let theirs = &outs[i];
            let Some(kind) = differ(st, theirs) else {
                *tally.agree.entry(o.to_string()).or_default() += 1;
                continue;
            };
            match allow
                .deviations
                .iter()
                .find(|d| d.explains(o, &case.tags, kind, st, theirs))
            {
                Some(d) => {
                    *tally.allowed.entry(d.id.clone()).or_default() += 1;
                    let ex = allowed_examples.entry(d.id.clone()).or_default();
                    if ex.len() < 3 {
                        ex.push(case.id.clone());
                    }
                }
                None => {
                    *tally.unexplained.entry(o.to_string()).or_default() += 1;
                    for t in &case.tags {
                        *by_tag_unexplained.entry(format!("{o} {t}")).or_default() += 1;
                    }
                    let ex = unexplained.entry((o.to_string(), kind)).or_default();
                    if ex.len() < examples {
                        ex.push(show_case(case, &[("scimtrail", st), (o, theirs)]));
                    } else {
                        ex.push(String::new());
                    }
                }
            }
        }
        if show.contains(&case.id) {
            say(&show_case(
                case,
                &[
                    ("scimtrail", st),
                    ("lenient", &lenient[i]),
                    (ORACLES[0], &answers[0].0[i]),
                    (ORACLES[1], &answers[1].0[i]),
                ],
            ));
        }
    }

    if let Ok(path) = std::env::var("SCIMTRAIL_PATCH_DUMP") {
        let mut text = String::new();
        for (i, case) in cases.iter().enumerate() {
            let o = |x: &Outcome| match x {
                Outcome::Ok(v) => json!({ "ok": true, "result": normalise(v) }),
                Outcome::Err { scim_type, detail } => {
                    json!({ "ok": false, "error": scim_type, "detail": detail })
                }
            };
            let line = json!({
                "id": case.id, "tags": case.tags, "resource_type": case.resource_type,
                "resource": case.resource, "request": case.request,
                "scimtrail": o(&ours[i]), "lenient": o(&lenient[i]),
                ORACLES[0]: o(&answers[0].0[i]), ORACLES[1]: o(&answers[1].0[i]),
            });
            text.push_str(&line.to_string());
            text.push('\n');
        }
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("SCIMTRAIL_PATCH_DUMP={path}: {e}"));
        say(&format!(
            "  every case and answer written to {path} (SCIMTRAIL_PATCH_DUMP)"
        ));
    }

    // Where Lenient answers differently from Strict, by tag.
    let mut lenient_tags: BTreeMap<String, usize> = BTreeMap::new();
    let mut lenient_cases = 0;
    for (i, case) in cases.iter().enumerate() {
        if differ(&ours[i], &lenient[i]).is_some() {
            lenient_cases += 1;
            for t in &case.tags {
                *lenient_tags.entry(t.clone()).or_default() += 1;
            }
        }
    }

    let stale: Vec<&str> = if count >= DEFAULT_CASES {
        allow
            .deviations
            .iter()
            .filter(|d| !tally.allowed.contains_key(&d.id))
            .map(|d| d.id.as_str())
            .collect()
    } else {
        Vec::new()
    };

    // ------------------------------------------------------------- summary
    let mut out = String::new();
    out.push_str(&format!(
        "\nPATCH differential conformance: {} cases (seed {seed:#x}), oracles {}\n",
        tally.cases,
        oracles::versions(&dir)
    ));
    out.push_str(&format!(
        "  time: generate {:.2}s, scimtrail (strict + lenient) {:.2}s, {} {:.2}s, {} {:.2}s\n",
        gen_time.as_secs_f64(),
        ours_time.as_secs_f64(),
        ORACLES[0],
        answers[0].1.as_secs_f64(),
        ORACLES[1],
        answers[1].1.as_secs_f64()
    ));
    out.push_str(&format!(
        "  {:<14} {:>9} {:>9} {:>12}\n",
        "oracle", "agree", "allowed", "unexplained"
    ));
    for o in ORACLES {
        let allowed: usize = allow
            .deviations
            .iter()
            .filter(|d| d.oracle == o)
            .map(|d| tally.allowed.get(&d.id).copied().unwrap_or(0))
            .sum();
        out.push_str(&format!(
            "  {:<14} {:>9} {:>9} {:>12}\n",
            o,
            tally.agree.get(o).unwrap_or(&0),
            allowed,
            tally.unexplained.get(o).unwrap_or(&0)
        ));
    }
    out.push_str(&format!(
        "  (the two oracles agree with each other on {oracles_agree} cases)\n"
    ));
    out.push_str("  allowed deviations (deviations.json):\n");
    for d in &allow.deviations {
        out.push_str(&format!(
            "    {:>5}  {:<13} {:<44} verdict: {}{}\n",
            tally.allowed.get(&d.id).unwrap_or(&0),
            d.oracle,
            d.id,
            d.verdict,
            allowed_examples
                .get(&d.id)
                .map(|e| format!("  e.g. {}", e.join(" ")))
                .unwrap_or_default()
        ));
    }
    out.push_str(&format!(
        "  Compat::Lenient answers differently from Strict on {lenient_cases} cases"
    ));
    if !lenient_tags.is_empty() {
        let mut top: Vec<_> = lenient_tags.iter().collect();
        top.sort_by(|a, b| b.1.cmp(a.1));
        let top: Vec<String> = top
            .iter()
            .take(8)
            .map(|(t, n)| format!("{t} {n}"))
            .collect();
        out.push_str(&format!(" (tags: {})", top.join(", ")));
    }
    out.push('\n');
    say(&out);

    let report = json!({
        "cases": tally.cases,
        "seed": seed,
        "oracles": oracles::versions(&dir),
        "agree": tally.agree,
        "allowed": tally.allowed,
        "unexplained": tally.unexplained,
        "oracles_agree_with_each_other": oracles_agree,
        "lenient_differs": lenient_cases,
        "stale": stale,
        "unexplained_by_tag": by_tag_unexplained,
    });
    let report_path = write_report("differential.json", &report);
    // The allow-list as docs/patch-conformance.md shows it, with this run's counts.
    let table = allow_list_table(&allow, Some(&tally.allowed));
    let table_path = write_report("deviations.md", &Value::String(table));
    say(&format!(
        "  report: {report_path}, allow-list table: {table_path}"
    ));

    let mut problems = String::new();
    for ((o, kind), ex) in &unexplained {
        problems.push_str(&format!(
            "\n{} unexplained {} disagreement(s) with {o}:\n",
            ex.len(),
            kind.as_str()
        ));
        for e in ex.iter().filter(|e| !e.is_empty()) {
            problems.push_str(e);
        }
    }
    if !unexplained.is_empty() {
        let mut top: Vec<_> = by_tag_unexplained.iter().collect();
        top.sort_by(|a, b| b.1.cmp(a.1));
        problems.push_str("\nunexplained disagreements by oracle and tag (most first):\n");
        for (t, n) in top.iter().take(25) {
            problems.push_str(&format!("  {n:>5}  {t}\n"));
        }
    }
    for s in &stale {
        problems.push_str(&format!(
            "\ndeviations.json entry {s} explains no disagreement: the behaviour is gone, or the matcher is wrong; remove or fix it\n"
        ));
    }
    assert!(
        problems.is_empty(),
        "scimtrail's PATCH engine disagrees with an oracle where deviations.json explains nothing, or deviations.json is stale \
         (each disagreement: is scimtrail wrong per RFC 7644 §3.5.2 / RFC 7643? fix the engine; is the oracle wrong? add an entry citing the RFC). \
         Report: {report_path}\n{problems}"
    );
}

// ------------------------------------------------------------------- the docs

fn repo_file(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

const DOC: &str = "docs/patch-conformance.md";
const TABLE_BEGIN: &str =
    "<!-- allow-list table: generated from tests/patch/deviations.json, checked by the_docs_list_every_deviation -->";
const TABLE_END: &str = "<!-- end of allow-list table -->";

/// The allow-list as a Markdown table, one row an entry in file order; with
/// `counts`, a last column of the disagreements each explained.
fn allow_list_table(allow: &AllowList, counts: Option<&BTreeMap<String, usize>>) -> String {
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let mut table = String::from("| # | oracle | entry: what the oracle does | RFC | verdict |");
    table.push_str(if counts.is_some() {
        " cases |\n|---|---|---|---|---|---|\n"
    } else {
        "\n|---|---|---|---|---|\n"
    });
    for (n, d) in allow.deviations.iter().enumerate() {
        let note = d
            .note
            .as_deref()
            .map(|n| format!(" {}", cell(n)))
            .unwrap_or_default();
        table.push_str(&format!(
            "| {} | {} | `{}`: {}{} | {} | {} |",
            n + 1,
            d.oracle,
            d.id,
            cell(&d.oracle_behaviour),
            note,
            cell(&d.rfc),
            cell(&d.verdict),
        ));
        if let Some(counts) = counts {
            table.push_str(&format!(" {} |", counts.get(&d.id).unwrap_or(&0)));
        }
        table.push('\n');
    }
    table
}

/// docs/patch-conformance.md carries the whole allow-list, as generated from
/// deviations.json. `SCIMTRAIL_PATCH_BLESS=1` rewrites the doc's table.
#[test]
fn the_docs_list_every_deviation() {
    let allow: AllowList =
        serde_json::from_value(read_json("deviations.json")).expect("deviations.json");
    let path = repo_file(DOC);
    let doc = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{DOC}: {e}"));
    let (Some(begin), Some(end)) = (doc.find(TABLE_BEGIN), doc.find(TABLE_END)) else {
        panic!("{DOC} has no allow-list table between {TABLE_BEGIN} and {TABLE_END}");
    };
    let start = begin + TABLE_BEGIN.len();
    let have = doc[start..end].trim();
    let want = allow_list_table(&allow, None);
    // Every id, once, whatever else differs: the message names what is missing.
    let missing: Vec<&str> = allow
        .deviations
        .iter()
        .map(|d| d.id.as_str())
        .filter(|id| have.matches(&format!("`{id}`")).count() != 1)
        .collect();
    if have == want.trim() {
        return;
    }
    if std::env::var_os("SCIMTRAIL_PATCH_BLESS").is_some() {
        let text = format!("{}\n\n{}\n{}", &doc[..start], want.trim(), &doc[end..]);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{DOC}: {e}"));
        say(&format!(
            "  {DOC}: allow-list table rewritten (SCIMTRAIL_PATCH_BLESS)"
        ));
        return;
    }
    let generated = write_report("deviations-doc.md", &Value::String(want));
    panic!(
        "{DOC}'s allow-list table is not deviations.json's ({} entries; not listed exactly once: {missing:?}). \
         The table to paste is in {generated}; or run the test with SCIMTRAIL_PATCH_BLESS=1",
        allow.deviations.len()
    );
}

/// Each Lenient deviation the engine's module doc lists (`//! N. ...` under
/// `# Lenient deviations` in services/core/src/scim/patch.rs) has a lenient
/// hard case naming it (`"deviation": N`), with its strict twin.
#[test]
fn every_lenient_deviation_has_a_hard_case() {
    let src = repo_file("services/core/src/scim/patch.rs");
    let src = std::fs::read_to_string(&src).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
    let listed: BTreeSet<u64> = src
        .lines()
        .skip_while(|l| l.trim() != "//! # Lenient deviations")
        .take_while(|l| l.starts_with("//!"))
        .filter_map(|l| {
            let item = l.trim_start_matches("//!").trim_start();
            let (n, rest) = item.split_once(". ")?;
            (!rest.is_empty()).then(|| n.parse().ok())?
        })
        .collect();
    assert!(
        !listed.is_empty(),
        "no numbered list under `//! # Lenient deviations` in patch.rs"
    );
    let file = read_json("cases.json");
    let mut covered = BTreeSet::new();
    for c in file["cases"].as_array().expect("cases.json: cases") {
        if c["compat"].as_str() != Some("lenient") {
            continue;
        }
        let id = c["id"].as_str().unwrap_or("?");
        let n = c["deviation"]
            .as_u64()
            .unwrap_or_else(|| panic!("cases.json {id}: a lenient case names its deviation"));
        assert!(
            listed.contains(&n),
            "cases.json {id}: patch.rs lists no Lenient deviation {n}"
        );
        covered.insert(n);
    }
    let uncovered: Vec<_> = listed.difference(&covered).collect();
    assert!(
        uncovered.is_empty(),
        "Lenient deviations without a lenient hard case in cases.json: {uncovered:?}"
    );
}
