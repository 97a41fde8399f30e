//! `scimtrail topics ensure`.

use scimtrail_core::config::CommonConfig;
use scimtrail_core::kafka::{ensure_topics, pipeline_topics, TopicStatus};

pub async fn ensure(common: &CommonConfig) -> anyhow::Result<()> {
    let specs = pipeline_topics(&common.topics);
    let results = ensure_topics(&common.kafka, &specs).await?;
    let mut mismatched = Vec::new();
    for (name, status) in results {
        match status {
            TopicStatus::Created => {
                println!("created {name} ({} partitions)", common.topics.partitions)
            }
            TopicStatus::Exists { partitions } => {
                println!("exists  {name} ({partitions} partitions)");
                if partitions != common.topics.partitions {
                    mismatched.push(format!("{name} has {partitions}"));
                }
            }
        }
    }
    if !mismatched.is_empty() {
        // Events of a resource keep their partition number end to end; topics
        // with different partition counts break that.
        anyhow::bail!(
            "topics.partitions is {}, but {}; all pipeline topics need the same partition count",
            common.topics.partitions,
            mismatched.join(", ")
        );
    }
    Ok(())
}
