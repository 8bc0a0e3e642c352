//! Tests of the NATS harness itself: real nats-server processes, real
//! JetStream, real crashes (SIGKILL).

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use async_nats::jetstream::{self, stream};
use mdhub_tests::nats::{nats_server_binary, nats_server_version, NatsCluster, NatsServer};
use mdhub_tests::wait::{wait_for, wait_until};

/// Generous: after losing its meta leader, nats-server 2.9 (the Debian
/// fallback) takes about 10 s to elect a new one.
const DEADLINE: Duration = Duration::from_secs(30);

fn file_stream(name: &str, subject: &str, replicas: usize) -> stream::Config {
    stream::Config {
        name: name.to_string(),
        subjects: vec![subject.to_string()],
        storage: stream::StorageType::File,
        num_replicas: replicas,
        ..Default::default()
    }
}

fn port_refuses(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        Duration::from_millis(300),
    )
    .is_err()
}

/// Reads message `seq` of `stream_name`, retrying until the deadline (after
/// a crash the stream needs a moment to recover or elect a leader).
async fn read_message(
    js: &jetstream::Context,
    stream_name: &str,
    seq: u64,
) -> anyhow::Result<Vec<u8>> {
    wait_for(
        &format!("message {seq} of stream {stream_name}"),
        DEADLINE,
        || async {
            let stream = tokio::time::timeout(Duration::from_secs(3), js.get_stream(stream_name))
                .await
                .map_err(|_| anyhow!("get_stream timed out"))??;
            let msg = tokio::time::timeout(Duration::from_secs(3), stream.get_raw_message(seq))
                .await
                .map_err(|_| anyhow!("get_raw_message timed out"))??;
            Ok(Some(msg.payload.to_vec()))
        },
    )
    .await
}

/// Publishes with a `Nats-Msg-Id` and waits for the ack, retrying on errors
/// (in a cluster the stream's interest may not have reached the client's
/// server yet right after creation: "no responders"). The message id makes a
/// retry idempotent, so the ack's sequence is meaningful.
async fn publish_acked(
    js: &jetstream::Context,
    subject: &str,
    msg_id: &str,
    payload: &[u8],
) -> anyhow::Result<jetstream::publish::PublishAck> {
    wait_for(
        &format!("ack for {msg_id} on {subject}"),
        DEADLINE,
        || async {
            let publish = jetstream::message::PublishMessage::build()
                .payload(payload.to_vec().into())
                .message_id(msg_id);
            let ack = tokio::time::timeout(Duration::from_secs(3), async {
                js.send_publish(subject.to_string(), publish)
                    .await?
                    .await
                    .map_err(anyhow::Error::from)
            })
            .await
            .map_err(|_| anyhow!("publish timed out"))??;
            Ok(Some(ack))
        },
    )
    .await
}

#[tokio::test]
async fn single_server_jetstream_survives_kill_and_restart() -> anyhow::Result<()> {
    let (bin, version) = nats_server_binary()?;
    let mut server = NatsServer::start()?;
    assert_eq!(server.version(), version);
    assert_eq!(server.binary(), bin.as_path());
    assert_eq!(server.url(), format!("nats://127.0.0.1:{}", server.port()));
    assert_eq!(server.client_url(), server.url());
    assert!(server.is_running());

    // The generated config is what the server runs with.
    let varz = server.monitor_json("/varz")?;
    assert_eq!(varz["port"].as_u64(), Some(u64::from(server.port())));
    assert_eq!(varz["max_payload"].as_u64(), Some(1024 * 1024));
    let store = varz
        .pointer("/jetstream/config/store_dir")
        .and_then(|v| v.as_str())
        .context("varz has no jetstream store_dir")?;
    assert!(
        Path::new(store).starts_with(server.store_dir()),
        "store_dir {store} is not under {}",
        server.store_dir().display()
    );
    if version.supports_sync_interval() {
        assert!(server.sync_always());
        assert_eq!(
            varz.pointer("/jetstream/config/sync_always")
                .and_then(|v| v.as_bool()),
            Some(true),
            "the included jetstream-sync.conf did not take effect: {}",
            varz["jetstream"]
        );
    } else {
        assert!(!server.sync_always());
    }

    // JetStream works: file stream, acknowledged publish, read back.
    let js = server.jetstream().await?;
    let mut s = js
        .get_or_create_stream(file_stream("HARNESS", "harness.>", 1))
        .await?;
    assert_eq!(s.info().await?.config.storage, stream::StorageType::File);
    let payload = b"golden record 42".to_vec();
    let ack = js
        .publish("harness.one", payload.clone().into())
        .await?
        .await?;
    assert_eq!(ack.stream, "HARNESS");
    assert_eq!(ack.sequence, 1);
    assert_eq!(s.get_raw_message(1).await?.payload.to_vec(), payload);

    // Crash: SIGKILL. The port closes; the data dir stays.
    let old_pid = server.pid();
    let port = server.port();
    server.kill()?;
    assert!(!server.is_running());
    assert!(server.pid().is_none());
    assert!(port_refuses(port), "port {port} still accepts after kill");
    assert!(server.store_dir().join("jetstream").is_dir());

    // Restart on the same port and store dir: the acknowledged message is there.
    server.restart()?;
    assert!(server.is_running());
    assert_ne!(server.pid(), old_pid);
    assert_eq!(server.port(), port);
    let js = server.jetstream().await?;
    assert_eq!(read_message(&js, "HARNESS", 1).await?, payload);
    let mut s = js.get_stream("HARNESS").await?;
    assert_eq!(s.info().await?.state.messages, 1);

    // And it keeps working: the next publish gets sequence 2.
    let ack = js
        .publish("harness.two", "after restart".into())
        .await?
        .await?;
    assert_eq!(ack.sequence, 2);

    // A clean stop and start keeps both.
    server.stop()?;
    assert!(port_refuses(port));
    server.start_again()?;
    let js = server.jetstream().await?;
    let mut s = js.get_stream("HARNESS").await?;
    assert_eq!(s.info().await?.state.messages, 2);

    // The log went to the file, not to the test's output.
    let log = std::fs::read_to_string(server.log_path())?;
    assert!(log.contains("Server is ready"), "{log}");
    Ok(())
}

#[tokio::test]
async fn builder_sets_max_payload_and_sync() -> anyhow::Result<()> {
    let server = NatsServer::builder()
        .max_payload(64 * 1024)
        .sync_always(false)
        .start()?;
    let varz = server.monitor_json("/varz")?;
    assert_eq!(varz["max_payload"].as_u64(), Some(64 * 1024));
    assert!(!server.sync_always());
    assert_ne!(
        varz.pointer("/jetstream/config/sync_always")
            .and_then(|v| v.as_bool()),
        Some(true)
    );
    assert!(!std::fs::read_to_string(server.config_path())?.contains("include"));

    // The server enforces it: a payload over the limit is refused.
    let client = server.connect().await?;
    assert_eq!(client.server_info().max_payload, 64 * 1024);
    let too_big = vec![0u8; 64 * 1024 + 1];
    assert!(client.publish("x", too_big.into()).await.is_err());
    Ok(())
}

#[tokio::test]
async fn two_servers_get_distinct_ports_and_dirs() -> anyhow::Result<()> {
    let a = NatsServer::start()?;
    let b = NatsServer::start()?;
    assert_ne!(a.port(), b.port());
    assert_ne!(a.monitor_port(), b.monitor_port());
    assert_ne!(a.dir(), b.dir());
    let dir = a.dir().to_path_buf();
    let port = a.port();
    drop(a);
    // Drop kills the process and removes the temp dir.
    assert!(port_refuses(port));
    assert!(!dir.exists(), "{} was not removed", dir.display());
    // The other one is unaffected.
    let client = b.connect().await?;
    client.flush().await?;
    Ok(())
}

/// Debian's nats-server 2.9.10 (if installed) runs as a fallback, without
/// `sync_interval`.
#[tokio::test]
async fn debian_fallback_server_starts_without_sync() -> anyhow::Result<()> {
    let old = Path::new("/usr/sbin/nats-server");
    if !old.exists() {
        eprintln!("skipped: {} not installed", old.display());
        return Ok(());
    }
    let version = nats_server_version(old)?;
    let server = NatsServer::builder().binary(old).start()?;
    assert_eq!(server.version(), version);
    assert_eq!(server.sync_always(), version.supports_sync_interval());
    let js = server.jetstream().await?;
    js.get_or_create_stream(file_stream("OLD", "old.>", 1))
        .await?;
    let ack = js.publish("old.x", "hi".into()).await?.await?;
    assert_eq!(ack.sequence, 1);
    Ok(())
}

#[tokio::test]
async fn cluster_r3_stream_survives_losing_its_leader() -> anyhow::Result<()> {
    let mut cluster = NatsCluster::start(3)?;
    assert_eq!(cluster.size(), 3);
    let urls = cluster.urls();
    assert_eq!(urls.len(), 3);
    assert_eq!(cluster.client_urls_joined(), urls.join(","));
    for i in 0..3 {
        assert_eq!(cluster.server_name(i), format!("n{}", i + 1));
        let leader = cluster.meta_leader(i)?;
        assert!(leader.is_some(), "node {i} has no meta leader");
        let jsz = cluster.monitor_json(i, "/jsz")?;
        assert_eq!(
            jsz.pointer("/meta_cluster/cluster_size")
                .and_then(|v| v.as_u64()),
            Some(3)
        );
        if cluster.version().supports_sync_interval() {
            assert_eq!(
                jsz.pointer("/config/sync_always").and_then(|v| v.as_bool()),
                Some(true),
                "node {i}: {}",
                jsz["config"]
            );
        }
    }

    let js = cluster.jetstream().await?;
    let mut s = js
        .get_or_create_stream(file_stream("MDHUB_HARNESS_R3", "r3.>", 3))
        .await?;
    let mut payloads = Vec::new();
    for n in 1..=10u64 {
        let p = format!("event {n}").into_bytes();
        let ack = publish_acked(&js, &format!("r3.{n}"), &format!("m{n}"), &p).await?;
        assert_eq!(ack.sequence, n);
        assert!(!ack.duplicate);
        payloads.push(p);
    }
    let info = s.info().await?.clone();
    assert_eq!(info.config.num_replicas, 3);
    assert_eq!(info.state.messages, 10);
    // A leader and two current followers (followers may lag a moment).
    let leader = wait_for(
        "R3 stream with a leader and two current followers",
        DEADLINE,
        || async {
            let mut s = js.get_stream("MDHUB_HARNESS_R3").await?;
            let info = s.info().await?;
            let Some(cl) = info.cluster.as_ref() else {
                anyhow::bail!("R3 stream without cluster info");
            };
            let followers_ok = cl.replicas.len() == 2 && cl.replicas.iter().all(|r| r.current);
            Ok(cl.leader.clone().filter(|_| followers_ok))
        },
    )
    .await?;

    // Kill the stream's leader (the hard case).
    let victim = (0..3)
        .find(|&i| cluster.server_name(i) == leader)
        .with_context(|| format!("stream leader {leader} is not a node"))?;
    cluster.kill_node(victim)?;
    assert!(!cluster.is_node_running(victim));
    assert_eq!(cluster.running_nodes().len(), 2);

    // Every acknowledged message is still readable (a new leader is elected).
    for (i, p) in payloads.iter().enumerate() {
        let got = read_message(&js, "MDHUB_HARNESS_R3", i as u64 + 1).await?;
        assert_eq!(&got, p, "message {}", i + 1);
    }
    // A new stream leader, on a surviving node.
    let new_leader = wait_for("a new R3 stream leader", DEADLINE, || async {
        let mut s = js.get_stream("MDHUB_HARNESS_R3").await?;
        let info = s.info().await?;
        Ok(info
            .cluster
            .as_ref()
            .and_then(|c| c.leader.clone())
            .filter(|l| *l != leader))
    })
    .await?;
    assert_ne!(new_leader, leader);

    // Two of three is a quorum: publishes are still acknowledged.
    let ack = publish_acked(&js, "r3.after", "after-kill", b"after kill").await?;
    assert_eq!(ack.sequence, 11, "one more after 10 messages");

    // The survivors agree on a meta leader again.
    cluster.wait_ready().await?;
    let ml = cluster
        .meta_leader((victim + 1) % 3)?
        .context("no meta leader")?;
    assert_ne!(ml, cluster.server_name(victim));

    // The killed node comes back and catches up.
    cluster.restart_node(victim)?;
    assert!(cluster.is_node_running(victim));
    wait_until("all three replicas current", DEADLINE, || async {
        let Ok(mut s) = js.get_stream("MDHUB_HARNESS_R3").await else {
            return false;
        };
        let Ok(info) = s.info().await else {
            return false;
        };
        info.state.messages == ack.sequence
            && info.cluster.as_ref().is_some_and(|c| {
                c.replicas.len() == 2 && c.replicas.iter().all(|r| r.current && !r.offline)
            })
    })
    .await?;
    Ok(())
}

/// A server that dies during start-up gives an error carrying its log.
#[test]
fn startup_failure_reports_the_log_tail() -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir()?;
    let fake = dir.path().join("nats-server");
    std::fs::write(
        &fake,
        "#!/bin/sh\n\
         if [ \"$1\" = --version ]; then echo 'nats-server: v2.15.1'; exit 0; fi\n\
         echo 'fake server: cannot open store' >&2\n\
         exit 3\n",
    )?;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755))?;
    let started = std::time::Instant::now();
    let err = NatsServer::builder()
        .binary(&fake)
        .start()
        .expect_err("a server that exits cannot start");
    let text = format!("{err:#}");
    assert!(text.contains("exited during start-up"), "{text}");
    assert!(text.contains("fake server: cannot open store"), "{text}");
    // Noticed at once, not after the whole deadline.
    assert!(started.elapsed() < Duration::from_secs(5));
    Ok(())
}
