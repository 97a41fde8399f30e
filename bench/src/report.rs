//! The result file every benchmark writes: its figures with everything needed
//! to judge and reproduce them (goal, verdict, parameters, code, machine,
//! broker), as `<out>/<name>-<UTC timestamp>.json`.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::host::{Code, Machine};

/// What a benchmark must reach, stated as data so a reader (or CI) can check
/// the verdict against the figures.
#[derive(Debug, Clone, Serialize)]
pub struct Goal {
    /// The figure the goal is about (a key of `figures`).
    pub metric: &'static str,
    /// `>=` or `<=`.
    pub comparison: &'static str,
    pub threshold: f64,
    pub description: &'static str,
}

impl Goal {
    pub fn met_by(&self, value: f64) -> bool {
        match self.comparison {
            ">=" => value >= self.threshold,
            _ => value <= self.threshold,
        }
    }
}

/// A further goal of a benchmark with more than one, with its figure and
/// verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub goal: Goal,
    /// `None` when the figure was not measured (the goal is then not met).
    pub value: Option<f64>,
    pub pass: bool,
}

#[derive(Debug, Serialize)]
pub struct Report<P: Serialize, F: Serialize> {
    pub benchmark: &'static str,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub goal: Goal,
    /// Every goal met: `goal` and each of `other_goals`.
    pub pass: bool,
    /// Goals besides `goal`, each with its own figure and verdict.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub other_goals: Vec<Verdict>,
    pub parameters: P,
    pub figures: F,
    pub code: Code,
    pub machine: Machine,
    /// `None` for benchmarks that do not use Kafka.
    pub kafka_version: Option<String>,
}

impl<P: Serialize, F: Serialize> Report<P, F> {
    /// Writes the report as pretty JSON to `<dir>/<benchmark>-<started_at>.json`
    /// (creating `dir`) and returns the path.
    pub fn write(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
        let path = dir.join(file_name(self.benchmark, self.started_at));
        let mut json = serde_json::to_string_pretty(self)?;
        json.push('\n');
        std::fs::write(&path, json)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        Ok(path)
    }
}

/// `enricher-20250102T030405Z.json`: sortable, and free of `:` so the name is
/// valid on every file system.
fn file_name(benchmark: &str, at: DateTime<Utc>) -> String {
    format!("{benchmark}-{}.json", at.format("%Y%m%dT%H%M%SZ"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn file_names_sort_by_time_and_avoid_colons() {
        let at = Utc
            .with_ymd_and_hms(2025, 1, 2, 3, 4, 5)
            .single()
            .expect("valid time");
        assert_eq!(file_name("enricher", at), "enricher-20250102T030405Z.json");
    }

    #[test]
    fn goals_compare_in_their_direction() {
        let at_least = Goal {
            metric: "ratio",
            comparison: ">=",
            threshold: 0.7,
            description: "",
        };
        assert!(at_least.met_by(0.7));
        assert!(!at_least.met_by(0.69));
        let at_most = Goal {
            metric: "rss",
            comparison: "<=",
            threshold: 10.0,
            description: "",
        };
        assert!(at_most.met_by(10.0));
        assert!(!at_most.met_by(10.5));
    }
}
