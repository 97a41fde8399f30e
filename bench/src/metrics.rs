//! Figures read back from a stage's Prometheus registry.

/// Sum of a counter family's values over all its labels.
pub fn counter_total(registry: &prometheus::Registry, name: &str) -> u64 {
    registry
        .gather()
        .iter()
        .filter(|f| f.name() == name)
        .flat_map(|f| f.get_metric().iter())
        .map(|m| m.get_counter().get_value())
        .sum::<f64>() as u64
}

/// A gauge's value (its first series), if registered.
pub fn gauge(registry: &prometheus::Registry, name: &str) -> Option<f64> {
    registry
        .gather()
        .iter()
        .find(|f| f.name() == name)
        .and_then(|f| f.get_metric().first())
        .map(|m| m.get_gauge().get_value())
}
