//! Errors of loading a rules file and of reading back stored state.

use std::fmt;

/// Why a rules file (or a stored state entry) was rejected. Its text names the
/// file, the rule (index and id) and the field:
/// `rules.yaml: rules[2] (id "mass-deletion"): threshold.window: invalid duration "5x" (use 30s, 5m, 1h, 1d)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RulesError {
    /// The file name (or another origin given to [`super::RuleSet::parse`]).
    pub origin: String,
    /// Index in `rules` of the rule at fault, if the problem is in one.
    pub rule_index: Option<usize>,
    /// Its id, when it has one.
    pub rule_id: Option<String>,
    /// Path of the field within the rule (or the file), e.g. `threshold.window`.
    pub field: Option<String>,
    pub message: String,
}

impl RulesError {
    pub(crate) fn file(origin: &str, message: impl Into<String>) -> Self {
        RulesError {
            origin: origin.to_string(),
            rule_index: None,
            rule_id: None,
            field: None,
            message: message.into(),
        }
    }

    pub(crate) fn field(
        origin: &str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        RulesError {
            field: Some(field.into()).filter(|f: &String| !f.is_empty() && f != "."),
            ..RulesError::file(origin, message)
        }
    }

    pub(crate) fn in_rule(mut self, index: usize, id: Option<&str>) -> Self {
        self.rule_index = Some(index);
        self.rule_id = id.map(str::to_string);
        self
    }
}

impl fmt::Display for RulesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.origin)?;
        if let Some(i) = self.rule_index {
            write!(f, "rules[{i}] ")?;
            match &self.rule_id {
                Some(id) => write!(f, "(id {id:?}): ")?,
                None => f.write_str("(no id): ")?,
            }
        }
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}
