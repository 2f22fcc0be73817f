//! Creating topics through the Kafka admin API, for local runs and tests.
//! On Kubernetes, Strimzi `KafkaTopic` resources own the topics instead.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("creating the Kafka admin client: {0}")]
    Client(#[source] KafkaError),
    #[error("creating topic {topic}: {source}")]
    Request {
        topic: String,
        #[source]
        source: KafkaError,
    },
    #[error("creating topic {topic}: the broker answered {code}")]
    Refused {
        topic: String,
        code: RDKafkaErrorCode,
    },
}

/// Creates `topic` with `partitions` partitions (replication 1) unless it
/// exists. Returns whether it was created.
pub async fn ensure_topic(
    config: &ClientConfig,
    topic: &str,
    partitions: i32,
) -> Result<bool, TopicError> {
    let admin: AdminClient<DefaultClientContext> = config.create().map_err(TopicError::Client)?;
    let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics([&new_topic], &options)
        .await
        .map_err(|source| TopicError::Request {
            topic: topic.to_string(),
            source,
        })?;
    let mut created = false;
    for result in results {
        match result {
            Ok(_) => created = true,
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => return Err(TopicError::Refused { topic: name, code }),
        }
    }
    Ok(created)
}
