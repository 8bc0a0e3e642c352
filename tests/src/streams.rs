//! Reading what a JetStream stream holds, for assertions.

use async_nats::jetstream;
use futures::StreamExt;

/// Every message of `stream` on subjects matching `filter`, in stream order,
/// read through a fresh consumer without acks (with explicit acks the server
/// would stop at `max_ack_pending`). Returns when a fetch brings nothing new.
pub async fn read_all(
    js: &jetstream::Context,
    stream: &str,
    filter: &str,
) -> anyhow::Result<Vec<jetstream::Message>> {
    let consumer = js
        .get_stream(stream)
        .await?
        .create_consumer(jetstream::consumer::pull::Config {
            filter_subject: filter.to_string(),
            ack_policy: jetstream::consumer::AckPolicy::None,
            ..Default::default()
        })
        .await?;
    let mut out = Vec::new();
    loop {
        let mut batch = consumer.fetch().max_messages(1000).messages().await?;
        let before = out.len();
        while let Some(m) = batch.next().await {
            out.push(m.map_err(|e| anyhow::anyhow!("reading {stream}: {e}"))?);
        }
        if out.len() == before {
            return Ok(out);
        }
    }
}
