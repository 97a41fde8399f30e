//! The rules engine: detections over the enriched audit stream, configured by
//! a YAML rules file (`docs/rules.md`), with no Kafka and no I/O but reading
//! that file. The detector's Kafka stages route events and call it.
//!
//! **Scale-out.** Each rule keeps its state per value of its `group_by`
//! fields (its *partitioning*). The Kafka side routes every event once per
//! distinct partitioning of the enabled rules ([`RuleSet::partitionings`],
//! [`Partitioning::key_of`]) through a repartition topic keyed by that key,
//! so every event of one key reaches one instance, and then calls
//! [`Engine::process`] with (partition, partitioning id, key, event).
//!
//! **Ordering and determinism.** Rules evaluate each key's events in event
//! time order (ties by a hash of the event id), once the partition's event time is
//! `allowed_lateness` past them; an event arriving after its key has already
//! evaluated a later one is *late* (counted, ignored). Hence: for any arrival
//! order in which no event arrives after an event more than
//! `allowed_lateness` newer on the same partition, the alerts are exactly
//! those of processing the events sorted by time — and a replay gives them
//! byte for byte. Nothing reads the wall clock.
//!
//! **Delivery.** State changes follow the Kafka transaction
//! ([`Engine::commit`], [`Engine::rollback`]); [`Engine::take_changes`] gives
//! the changed entries for a changelog and [`Engine::restore`] reads them
//! back, so windows, seen values and suppression survive restarts and
//! rebalances.

mod alert;
mod config;
mod engine;
mod error;
mod kinds;
mod state;
pub mod view;

#[cfg(test)]
mod day_tests;
#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod tests;

use std::path::Path;

use scimtrail_core::schema::EnrichedAuditEvent;

pub use alert::alert_id;
pub use config::Rule;
pub use engine::{Engine, EngineMetrics, EngineOptions};
pub use error::RulesError;

/// The default rule pack for SCIM provisioning (`services/detector/rules/default.yaml`).
pub const DEFAULT_PACK: &str = include_str!("../../rules/default.yaml");

/// A validated, immutable set of rules. Share it as `Arc<RuleSet>`.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: Vec<Rule>,
    partitionings: Vec<Partitioning>,
    /// Indices into `rules` of the enabled rules of each partitioning.
    by_partitioning: Vec<Vec<u32>>,
}

impl RuleSet {
    /// Parses and validates a rules file. `origin` (the file name) prefixes
    /// every error message.
    pub fn parse(yaml: &str, origin: &str) -> Result<RuleSet, RulesError> {
        Ok(RuleSet::from_rules(config::parse_file(yaml, origin)?))
    }

    /// Reads and validates a rules file.
    pub fn load(path: &Path) -> Result<RuleSet, RulesError> {
        let text = config::read_file(path)?;
        RuleSet::parse(&text, &path.display().to_string())
    }

    /// The default pack. It is validated by the test suite, so it always
    /// parses; were it ever not to, the result is an empty rule set and an
    /// error log, never a crash.
    pub fn default_pack() -> RuleSet {
        RuleSet::parse(DEFAULT_PACK, "default.yaml").unwrap_or_else(|e| {
            tracing::error!(message = "the built-in default rule pack is invalid", error = %e);
            RuleSet::from_rules(Vec::new())
        })
    }

    fn from_rules(rules: Vec<Rule>) -> RuleSet {
        let mut partitionings: Vec<Partitioning> = Vec::new();
        let mut by_partitioning: Vec<Vec<u32>> = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            if !rule.enabled {
                continue;
            }
            let id = rule.partitioning_id();
            let at = match partitionings.iter().position(|p| p.id == id) {
                Some(at) => at,
                None => {
                    partitionings.push(Partitioning {
                        id,
                        fields: rule.group_by.clone(),
                    });
                    by_partitioning.push(Vec::new());
                    partitionings.len() - 1
                }
            };
            by_partitioning[at].push(i as u32);
        }
        RuleSet {
            rules,
            partitionings,
            by_partitioning,
        }
    }

    /// The distinct partitionings of the enabled rules, in the order their
    /// first rule appears in the file.
    pub fn partitionings(&self) -> Vec<Partitioning> {
        self.partitionings.clone()
    }

    /// Every rule, enabled or not, in file order.
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter()
    }

    /// The rule with id `id`.
    pub fn rule(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }

    pub(crate) fn all(&self) -> &[Rule] {
        &self.rules
    }

    /// Index of partitioning `id` and the indices of its enabled rules.
    pub(crate) fn partitioning(&self, id: &str) -> Option<(&Partitioning, &[u32])> {
        let at = self.partitionings.iter().position(|p| p.id == id)?;
        Some((&self.partitionings[at], &self.by_partitioning[at]))
    }
}

/// The fields a group of rules keeps its state by; events are routed by the
/// key these fields make.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Partitioning {
    /// Stable id: the fields joined by `,`, e.g. `principal.id` or
    /// `target.system,resource.type,resource.id`.
    pub id: String,
    pub fields: Vec<String>,
}

/// Separates the values of a multi-field key (U+001F, as resource keys do).
pub const KEY_SEPARATOR: char = '\u{1f}';

impl Partitioning {
    /// The routing key of `event`: its values of the fields, joined by
    /// [`KEY_SEPARATOR`]. `None` when the event lacks one of them (such an
    /// event is not routed for this partitioning).
    pub fn key_of(&self, event: &EnrichedAuditEvent) -> Option<String> {
        let mut key = String::new();
        for (i, f) in self.fields.iter().enumerate() {
            if i > 0 {
                key.push(KEY_SEPARATOR);
            }
            key.push_str(view::scalar(event, f)?);
        }
        Some(key)
    }
}
