//! End-to-end tests of the JetStream publisher (`mdhub_connectors::publish`)
//! against a real nats-server 2.15.1 with JetStream and `sync_interval: always`.

use std::time::Duration;

use anyhow::{bail, ensure, Context as _};
use async_nats::jetstream::{self, consumer::pull, consumer::AckPolicy, stream};
use async_nats::HeaderMap;
use futures::StreamExt;
use mdhub_connectors::publish::{
    ensure_stream, err_code, Mode, OutMessage, Position, PublishError, Publisher,
    HEADER_BATCH_COMMIT, HEADER_BATCH_ID, HEADER_BATCH_SEQUENCE,
};
use mdhub_tests::nats::NatsServer;

/// No test may take longer than this, whatever the server does.
const TEST_DEADLINE: Duration = Duration::from_secs(60);

/// A server that can take atomic batches, with fsync on every write.
fn start_server() -> anyhow::Result<NatsServer> {
    let server = NatsServer::start()?;
    ensure!(
        server.version().supports_atomic_batch(),
        "these tests need nats-server >= 2.12 (atomic batches), the harness found {:?}",
        server.version()
    );
    ensure!(server.sync_always(), "expected sync_interval: always");
    Ok(server)
}

async fn connect(server: &NatsServer) -> anyhow::Result<async_nats::Client> {
    Ok(async_nats::ConnectOptions::new()
        .request_timeout(Some(Duration::from_secs(10)))
        .connect(server.client_url())
        .await?)
}

async fn make_stream(
    js: &jetstream::Context,
    name: &str,
    subjects: &str,
    mode: Mode,
) -> anyhow::Result<stream::Info> {
    let config = stream::Config {
        name: name.to_string(),
        subjects: vec![subjects.to_string()],
        storage: stream::StorageType::File,
        ..Default::default()
    };
    Ok(ensure_stream(js, config, mode).await?)
}

fn numbered(subject_prefix: &str, n: usize) -> Vec<OutMessage> {
    (0..n)
        .map(|i| {
            let mut headers = HeaderMap::new();
            headers.insert("Mdhub-Index", i.to_string().as_str());
            OutMessage::with_headers(
                format!("{subject_prefix}.{}", i % 7),
                headers,
                format!("msg-{i:05}"),
            )
        })
        .collect()
}

/// Reads the whole stream from sequence 1 with an ephemeral pull consumer.
async fn read_stream(
    js: &jetstream::Context,
    name: &str,
    expected: usize,
) -> anyhow::Result<Vec<jetstream::Message>> {
    let stream = js.get_stream(name).await?;
    let consumer = stream
        .create_consumer(pull::Config {
            ack_policy: AckPolicy::None,
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    let mut out = Vec::with_capacity(expected);
    let read = async {
        while out.len() < expected {
            match messages.next().await {
                Some(msg) => out.push(msg?),
                None => bail!("message stream ended after {}", out.len()),
            }
        }
        Ok(())
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .with_context(|| format!("reading {expected} messages from {name}"))??;
    Ok(out)
}

async fn stream_state(js: &jetstream::Context, name: &str) -> anyhow::Result<stream::State> {
    Ok(js.get_stream(name).await?.get_info().await?.state)
}

fn header<'a>(msg: &'a jetstream::Message, name: &str) -> Option<&'a str> {
    msg.headers.as_ref()?.get(name).map(|v| v.as_str())
}

#[tokio::test]
async fn atomic_2500_messages_land_in_order_in_three_batches() -> anyhow::Result<()> {
    tokio::time::timeout(TEST_DEADLINE, async {
        let server = start_server()?;
        let client = connect(&server).await?;
        let js = jetstream::new(client.clone());
        let info = make_stream(&js, "PB_ATOMIC", "pb.atomic.>", Mode::Atomic).await?;
        assert!(
            info.config.allow_atomic_publish,
            "stream must allow atomic publish"
        );

        let publisher = Publisher::new(client.clone(), Mode::Atomic);
        assert_eq!(publisher.mode(), Mode::Atomic);
        let report = publisher.publish_all(numbered("pb.atomic", 2_500)).await?;
        assert_eq!(report.messages, 2_500);
        assert_eq!(report.batches, 3);
        assert_eq!(report.last_stream_seq, 2_500);
        assert_eq!(report.stream.as_deref(), Some("PB_ATOMIC"));

        let state = stream_state(&js, "PB_ATOMIC").await?;
        assert_eq!(
            (state.messages, state.first_sequence, state.last_sequence),
            (2_500, 1, 2_500)
        );

        let stored = read_stream(&js, "PB_ATOMIC", 2_500).await?;
        let mut batch_ids = Vec::new();
        for (i, msg) in stored.iter().enumerate() {
            assert_eq!(
                msg.info().map_err(anyhow::Error::msg)?.stream_sequence,
                i as u64 + 1
            );
            assert_eq!(
                msg.payload.as_ref(),
                format!("msg-{i:05}").as_bytes(),
                "message {i}"
            );
            assert_eq!(msg.subject.as_str(), format!("pb.atomic.{}", i % 7));
            assert_eq!(header(msg, "Mdhub-Index"), Some(i.to_string().as_str()));
            let position_in_batch = i % 1_000 + 1;
            assert_eq!(
                header(msg, HEADER_BATCH_SEQUENCE),
                Some(position_in_batch.to_string().as_str()),
                "message {i}"
            );
            let is_last = position_in_batch == 1_000 || i == 2_499;
            assert_eq!(
                header(msg, HEADER_BATCH_COMMIT).is_some(),
                is_last,
                "message {i}"
            );
            let id = header(msg, HEADER_BATCH_ID)
                .context("batch id")?
                .to_string();
            if batch_ids.last() != Some(&id) {
                batch_ids.push(id);
            }
        }
        assert_eq!(batch_ids.len(), 3, "three distinct consecutive batch ids");
        let last = stored.last().context("last")?;
        assert_eq!(last.payload.as_ref(), b"msg-02499");
        assert_eq!(header(last, HEADER_BATCH_SEQUENCE), Some("500"));
        anyhow::Ok(())
    })
    .await?
}

#[tokio::test]
async fn atomic_batch_with_msg_id_is_refused_and_nothing_is_stored() -> anyhow::Result<()> {
    tokio::time::timeout(TEST_DEADLINE, async {
        let server = start_server()?;
        let client = connect(&server).await?;
        let js = jetstream::new(client.clone());
        make_stream(&js, "PB_MSGID", "pb.msgid.>", Mode::Atomic).await?;
        let publisher = Publisher::new(client.clone(), Mode::Atomic);

        // 1,500 messages = two batches; the Nats-Msg-Id sits in the second, so
        // the first would have been committed had it been sent.
        let mut msgs = numbered("pb.msgid", 1_500);
        msgs[1_200]
            .headers
            .get_or_insert_with(HeaderMap::new)
            .insert("Nats-Msg-Id", "evt-1200");
        let err = publisher
            .publish_all(msgs)
            .await
            .expect_err("a batch with Nats-Msg-Id must be refused");
        match &err {
            PublishError::Invalid { index, reason } => {
                assert_eq!(*index, 1_200);
                assert!(reason.contains("Nats-Msg-Id"), "unclear reason: {reason}");
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
        assert_eq!(err.stored(), 0);
        assert!(err.to_string().contains("message 1200"), "{err}");

        let state = stream_state(&js, "PB_MSGID").await?;
        assert_eq!(
            state.messages, 0,
            "nothing of the refused publish may be stored"
        );
        assert_eq!(state.last_sequence, 0);

        // The stream still takes a clean batch afterwards.
        let report = publisher.publish_all(numbered("pb.msgid", 10)).await?;
        assert_eq!(
            (report.messages, report.batches, report.last_stream_seq),
            (10, 1, 10)
        );
        anyhow::Ok(())
    })
    .await?
}

#[tokio::test]
async fn atomic_batch_rejected_by_the_server_stores_nothing() -> anyhow::Result<()> {
    tokio::time::timeout(TEST_DEADLINE, async {
        let server = start_server()?;
        let client = connect(&server).await?;
        let js = jetstream::new(client.clone());
        // Created for pipelined publishing: atomic publish stays disabled.
        let info = make_stream(&js, "PB_NOATOMIC", "pb.noatomic.>", Mode::Pipelined).await?;
        assert!(!info.config.allow_atomic_publish);

        let publisher = Publisher::new(client.clone(), Mode::Atomic);
        let err = publisher
            .publish_all(numbered("pb.noatomic", 50))
            .await
            .expect_err("stream without allow_atomic must reject the batch");
        match &err {
            PublishError::Rejected {
                at,
                code,
                err_code: code_js,
                description,
                stored,
            } => {
                assert!(
                    matches!(
                        at,
                        Position::Batch {
                            number: 1,
                            first: 0,
                            count: 50,
                            ..
                        }
                    ),
                    "{at:?}"
                );
                assert_eq!(*code, 400);
                assert_eq!(*code_js, err_code::ATOMIC_DISABLED);
                assert!(!description.is_empty());
                assert_eq!(*stored, 0);
            }
            other => panic!("expected Rejected, got {other:?}"),
        }
        assert!(err.to_string().contains("batch 1 (id "), "{err}");
        assert_eq!(stream_state(&js, "PB_NOATOMIC").await?.messages, 0);

        // Switching the stream to atomic publishing makes the same batch pass.
        let info = make_stream(&js, "PB_NOATOMIC", "pb.noatomic.>", Mode::Atomic).await?;
        assert!(info.config.allow_atomic_publish);
        let report = publisher.publish_all(numbered("pb.noatomic", 50)).await?;
        assert_eq!((report.messages, report.last_stream_seq), (50, 50));
        anyhow::Ok(())
    })
    .await?
}

#[tokio::test]
async fn pipelined_2000_messages_land_in_order() -> anyhow::Result<()> {
    tokio::time::timeout(TEST_DEADLINE, async {
        let server = start_server()?;
        let client = connect(&server).await?;
        let js = jetstream::new(client.clone());
        make_stream(&js, "PB_PIPE", "pb.pipe.>", Mode::Pipelined).await?;

        let publisher = Publisher::new(client.clone(), Mode::Pipelined).with_max_in_flight(256);
        let mut msgs = numbered("pb.pipe", 2_000);
        for (i, msg) in msgs.iter_mut().enumerate() {
            let id = format!("evt-{i}");
            msg.headers
                .get_or_insert_with(HeaderMap::new)
                .insert("Nats-Msg-Id", id.as_str());
        }
        let again: Vec<OutMessage> = msgs[..10].to_vec();
        let report = publisher.publish_all(msgs).await?;
        assert_eq!(report.messages, 2_000);
        assert_eq!(report.batches, 0);
        assert_eq!(report.duplicates, 0);
        assert_eq!(report.last_stream_seq, 2_000);
        assert_eq!(report.stream.as_deref(), Some("PB_PIPE"));

        let stored = read_stream(&js, "PB_PIPE", 2_000).await?;
        for (i, msg) in stored.iter().enumerate() {
            assert_eq!(
                msg.info().map_err(anyhow::Error::msg)?.stream_sequence,
                i as u64 + 1
            );
            assert_eq!(
                msg.payload.as_ref(),
                format!("msg-{i:05}").as_bytes(),
                "message {i}"
            );
            assert_eq!(
                header(msg, "Nats-Msg-Id"),
                Some(format!("evt-{i}").as_str())
            );
            assert!(header(msg, HEADER_BATCH_ID).is_none());
        }

        // Republishing with the same Nats-Msg-Id is acknowledged as duplicates.
        let report = publisher.publish_all(again).await?;
        assert_eq!((report.messages, report.duplicates), (10, 10));
        assert_eq!(stream_state(&js, "PB_PIPE").await?.messages, 2_000);
        anyhow::Ok(())
    })
    .await?
}

#[tokio::test]
async fn publishing_where_no_stream_listens_fails_without_hanging() -> anyhow::Result<()> {
    tokio::time::timeout(TEST_DEADLINE, async {
        let server = start_server()?;
        let client = connect(&server).await?;
        let js = jetstream::new(client.clone());
        make_stream(&js, "PB_OTHER", "pb.other.>", Mode::Atomic).await?;

        for mode in [Mode::Atomic, Mode::Pipelined] {
            // No grace: a stream that never appears fails at once.
            let publisher = Publisher::new(client.clone(), mode)
                .with_ack_timeout(Duration::from_secs(5))
                .with_no_stream_grace(Duration::ZERO);
            let started = std::time::Instant::now();
            let err = publisher
                .publish_all(numbered("pb.nowhere", 30))
                .await
                .expect_err("no stream covers pb.nowhere.*");
            match &err {
                PublishError::NoStream {
                    subject, stored, ..
                } => {
                    assert!(subject.starts_with("pb.nowhere."), "{subject}");
                    assert_eq!(*stored, 0);
                }
                other => panic!("{mode}: expected NoStream, got {other:?}"),
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{mode}: no-responders must fail fast, took {:?}",
                started.elapsed()
            );
        }
        assert_eq!(stream_state(&js, "PB_OTHER").await?.messages, 0);

        // One message of a batch on an uncovered subject: the stream sees a
        // gap and rejects the whole batch at the commit.
        let mut msgs = numbered("pb.other", 10);
        msgs[4].subject = "pb.nowhere.x".to_string();
        let err = Publisher::new(client.clone(), Mode::Atomic)
            .with_ack_timeout(Duration::from_secs(5))
            .publish_all(msgs)
            .await
            .expect_err("a batch with a gap must be rejected");
        assert_eq!(err.err_code(), Some(err_code::BATCH_INCOMPLETE), "{err:?}");
        assert_eq!(err.stored(), 0);
        assert_eq!(stream_state(&js, "PB_OTHER").await?.messages, 0);
        anyhow::Ok(())
    })
    .await?
}
