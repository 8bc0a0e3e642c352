//! The HTTP connector's source and sink against a real json-server 0.17.4
//! (with `updatedAt` stamped on every write): the initial load, changes and
//! deletes found by polls and full listings, equal change times, restarts
//! from a cursor, write-back with a refused record in the batch, hostile
//! ids and values, the webhook, and the API going away and coming back.
//!
//! The runner is not involved: the tests drive `Source` and `Sink`
//! directly, as the runner would.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use mdhub_connectors::contract::{
    Applied, CapturedTx, Connector, ConnectorError, Row, RowChange, Sink, Source, Write, WriteOp,
};
use mdhub_connectors::http::{HttpConfig, HttpSource, PollCursor, UpdateMethod};
use mdhub_tests::json_server::JsonServer;
use reqwest::Url;
use serde_json::{json, Value};

/// Longest wait for one thing to happen.
const DEADLINE: Duration = Duration::from_secs(15);

const COLLECTION: &str = "customers";

/// A config for the server's `customers` with small pages (so that paging
/// is exercised), fast polls and no full listings.
fn config(server: &JsonServer) -> HttpConfig {
    let mut cfg = HttpConfig::new(server.url(), COLLECTION);
    cfg.page_size = 2;
    cfg.poll_interval_ms = 50;
    cfg.full_list_interval_secs = 0;
    cfg.request_timeout_ms = 3_000;
    cfg
}

/// Another client of the API, changing records as a user would.
struct Rest {
    client: reqwest::Client,
    base: Url,
}

impl Rest {
    fn new(server: &JsonServer) -> anyhow::Result<Self> {
        Ok(Rest {
            client: reqwest::Client::new(),
            base: Url::parse(&format!("{}/{COLLECTION}", server.url()))?,
        })
    }

    fn url(&self, id: &str) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("an http URL has a path")
            .push(id);
        url
    }

    /// `POST` (a record with its own id), stamped `now` if given.
    async fn post(&self, body: Value, now: Option<&str>) -> anyhow::Result<Value> {
        let mut request = self.client.post(self.base.clone()).json(&body);
        if let Some(now) = now {
            request = request.header("X-Test-Now", now);
        }
        let response = request.send().await?.error_for_status()?;
        Ok(response.json().await?)
    }

    async fn patch(&self, id: &str, body: Value, now: Option<&str>) -> anyhow::Result<Value> {
        let mut request = self.client.patch(self.url(id)).json(&body);
        if let Some(now) = now {
            request = request.header("X-Test-Now", now);
        }
        let response = request.send().await?.error_for_status()?;
        Ok(response.json().await?)
    }

    async fn delete(&self, id: &str) -> anyhow::Result<()> {
        self.client
            .delete(self.url(id))
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }
}

/// The next transaction, within the deadline.
async fn next_tx(source: &mut HttpSource) -> anyhow::Result<CapturedTx> {
    tokio::time::timeout(DEADLINE, source.next())
        .await
        .map_err(|_| anyhow!("no transaction within {DEADLINE:?}"))??
        .context("the source ended")
}

/// Transactions until `n` changes have come.
async fn read_changes(source: &mut HttpSource, n: usize) -> anyhow::Result<Vec<CapturedTx>> {
    let mut txs = Vec::new();
    let mut seen = 0;
    while seen < n {
        let tx = next_tx(source).await?;
        seen += tx.changes.len();
        txs.push(tx);
    }
    if seen > n {
        bail!("{seen} changes came, {n} expected");
    }
    Ok(txs)
}

/// Transactions until one changes `id`, which is the last one returned.
async fn read_until(source: &mut HttpSource, id: &str) -> anyhow::Result<Vec<CapturedTx>> {
    let mut txs = Vec::new();
    loop {
        let tx = next_tx(source).await?;
        let done = tx.changes.iter().any(|c| c.record_id == id);
        txs.push(tx);
        if done {
            return Ok(txs);
        }
    }
}

/// Record id → change, over the transactions.
fn changes(txs: &[CapturedTx]) -> Vec<(String, RowChange)> {
    txs.iter()
        .flat_map(|tx| tx.changes.iter())
        .map(|c| (c.record_id.clone(), c.change.clone()))
        .collect()
}

fn upserted<'a>(txs: &'a [CapturedTx], id: &str) -> Option<&'a Row> {
    txs.iter()
        .flat_map(|tx| tx.changes.iter())
        .filter(|c| c.record_id == id)
        .find_map(|c| match &c.change {
            RowChange::Upsert(row) => Some(row),
            RowChange::Delete => None,
        })
}

fn row(value: Value) -> Row {
    match value {
        Value::Object(map) => map.into_iter().collect(),
        _ => Row::new(),
    }
}

fn customer(id: Value, name: &str, stamp: &str) -> Value {
    json!({"id": id, "name": name, "address": {"city": "Köln", "zip": null}, "updatedAt": stamp})
}

#[tokio::test]
async fn initial_load_then_inserts_updates_and_deletes() -> anyhow::Result<()> {
    let db = json!({COLLECTION: [
        customer(json!(1), "Ada", "2024-01-01T00:00:00.001Z"),
        customer(json!(2), "Bob", "2024-01-01T00:00:00.002Z"),
        customer(json!("c-3"), "Cyd", "2024-01-01T00:00:00.003Z"),
        customer(json!("c-4"), "Dan", "2024-01-01T00:00:00.004Z"),
        customer(json!("c-5"), "Eve", "2024-01-01T00:00:00.005Z"),
    ]});
    let server = JsonServer::start(&db)?;
    let rest = Rest::new(&server)?;
    let mut cfg = config(&server);
    cfg.full_list_interval_secs = 1;
    let mut source = cfg.open_source(None).await?;

    // Five records in pages of two: three load slices, the cursor only on
    // the last, with the progress counted.
    let load = read_changes(&mut source, 5).await?;
    assert_eq!(load.len(), 3, "pages of 2 over 5 records");
    assert!(load[..2].iter().all(|tx| tx.cursor.is_none()));
    let cursor = load[2]
        .cursor
        .clone()
        .context("the last load slice moves the cursor")?;
    assert_eq!(
        PollCursor::from_value(cursor)?.since.as_deref(),
        Some("2024-01-01T00:00:00.005Z"),
        "capture starts at the newest change time before the load"
    );
    let progress = load[2].load.context("load progress")?;
    assert_eq!((progress.done, progress.total), (5, Some(5)));
    let ids: BTreeSet<String> = changes(&load).into_iter().map(|(id, _)| id).collect();
    assert_eq!(
        ids,
        ["1", "2", "c-3", "c-4", "c-5"].map(String::from).into()
    );
    let ada = upserted(&load, "1").context("Ada loaded")?;
    assert_eq!(
        ada["address"],
        json!({"city": "Köln", "zip": null}),
        "nested values kept"
    );
    assert!(load.iter().all(|tx| !tx.own_write));

    // The first poll reads the newest record again (changes at the start
    // time are read again, never lost), with a per-version position.
    let again = read_until(&mut source, "c-5").await?;
    assert_eq!(changes(&again).len(), 1);
    assert_eq!(again[0].position, r#"["2024-01-01T00:00:00.005Z","c-5"]"#);

    rest.post(json!({"id": "new-1", "name": "Fay"}), None)
        .await?;
    let patched = rest.patch("2", json!({"name": "Bo"}), None).await?;
    rest.delete("c-3").await?;

    // The insert and the update by polls, the delete by the full listing
    // (which may also find the insert first: then the poll reads it again
    // with the same position, which the hub drops by event id).
    let polled = read_until(&mut source, "c-3").await?;
    let got: BTreeMap<String, RowChange> = changes(&polled).into_iter().collect();
    assert_eq!(got.get("c-3"), Some(&RowChange::Delete), "{got:?}");
    assert!(matches!(got.get("new-1"), Some(RowChange::Upsert(r)) if r["name"] == "Fay"));
    assert!(matches!(got.get("2"), Some(RowChange::Upsert(r)) if r["name"] == "Bo"));
    let stamp = patched["updatedAt"].as_str().context("stamped")?;
    let update_tx = polled
        .iter()
        .find(|tx| tx.changes.iter().any(|c| c.record_id == "2"))
        .context("the update")?;
    assert_eq!(update_tx.position, json!([stamp, "2"]).to_string());
    let observed = update_tx.changes[0].observed_at.context("observed_at")?;
    assert_eq!(
        time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339)?,
        observed,
        "observed_at is the record's updatedAt"
    );
    Ok(())
}

#[tokio::test]
async fn equal_change_times_are_neither_skipped_nor_doubled() -> anyhow::Result<()> {
    const T1: &str = "2024-02-02T02:02:02.222Z";
    // Between T1 and now: the marker written later is stamped after it.
    const T2: &str = "2024-03-03T03:03:03.333Z";
    let db = json!({COLLECTION: (1..=5)
        .map(|i| customer(json!(format!("same-{i}")), "Tie", T1))
        .collect::<Vec<_>>()});
    let server = JsonServer::start(&db)?;
    let rest = Rest::new(&server)?;
    let cfg = config(&server);
    // From a cursor before any change: polls only, pages of two over five
    // records with one change time.
    let start = PollCursor::default().to_value();
    let mut source = cfg.open_source(Some(start.clone())).await?;
    let first = read_changes(&mut source, 5).await?;
    let ids: BTreeSet<String> = changes(&first).into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids.len(), 5, "each once: {:?}", changes(&first));

    // Three updates in one millisecond, then a later one as a marker: all
    // three come once, and nothing else before the marker.
    for i in [1, 3, 5] {
        rest.patch(&format!("same-{i}"), json!({"name": "Tied"}), Some(T2))
            .await?;
    }
    let tied = read_changes(&mut source, 3).await?;
    rest.post(json!({"id": "marker", "name": "M"}), None)
        .await?;
    let marker = read_until(&mut source, "marker").await?;
    assert_eq!(
        changes(&marker).len(),
        1,
        "no change read twice: {:?}",
        changes(&marker)
    );
    let tied_ids: Vec<String> = changes(&tied).into_iter().map(|(id, _)| id).collect();
    assert_eq!(tied_ids, ["same-1", "same-3", "same-5"]);

    // A restart from the cursor after the first of the tied updates reads
    // the other two and the marker, with the positions of the first read.
    let mid = tied[0].cursor.clone().context("a poll moves the cursor")?;
    drop(source);
    let mut source = cfg.open_source(Some(mid)).await?;
    let reread = read_until(&mut source, "marker").await?;
    let positions: Vec<&str> = reread.iter().map(|tx| tx.position.as_str()).collect();
    let expected: Vec<&str> = tied[1..]
        .iter()
        .chain(&marker)
        .map(|tx| tx.position.as_str())
        .collect();
    assert_eq!(positions, expected);
    Ok(())
}

#[tokio::test]
async fn restart_finds_changes_and_deletes_made_while_away() -> anyhow::Result<()> {
    let db = json!({COLLECTION: [
        customer(json!("k1"), "A", "2024-01-01T00:00:00.001Z"),
        customer(json!("k2"), "B", "2024-01-01T00:00:00.002Z"),
        customer(json!("k3"), "C", "2024-01-01T00:00:00.003Z"),
    ]});
    let server = JsonServer::start(&db)?;
    let rest = Rest::new(&server)?;
    let state = tempfile::tempdir()?;
    let mut cfg = config(&server);
    cfg.full_list_interval_secs = 3_600;
    cfg.known_ids_file = Some(state.path().join("crm_known_ids.json"));

    let mut source = cfg.open_source(None).await?;
    let load = read_changes(&mut source, 3).await?;
    let cursor = load
        .last()
        .and_then(|tx| tx.cursor.clone())
        .context("cursor")?;
    // The runner saved the cursor: the known ids are kept with it.
    source.confirm(&cursor).await?;
    drop(source);

    // While the connector is away: an update, an insert, a delete.
    rest.patch("k1", json!({"name": "A2"}), None).await?;
    rest.post(json!({"id": "k4", "name": "D"}), None).await?;
    rest.delete("k2").await?;

    let mut source = cfg.open_source(Some(cursor)).await?;
    let mut got = BTreeMap::new();
    // k3 again (it has the start time), k1, k4, and k2's delete.
    while got.len() < 4 {
        for (id, change) in changes(&[next_tx(&mut source).await?]) {
            got.insert(id, change);
        }
    }
    assert_eq!(got.get("k2"), Some(&RowChange::Delete), "{got:?}");
    assert!(matches!(got.get("k1"), Some(RowChange::Upsert(r)) if r["name"] == "A2"));
    assert!(matches!(got.get("k4"), Some(RowChange::Upsert(_))));
    Ok(())
}

#[tokio::test]
async fn sink_updates_inserts_retires_and_reports_a_missing_record() -> anyhow::Result<()> {
    let db = json!({COLLECTION: [
        customer(json!("s1"), "One", "2024-01-01T00:00:00.001Z"),
        customer(json!("s2"), "Two", "2024-01-01T00:00:00.002Z"),
        customer(json!("s3"), "Three", "2024-01-01T00:00:00.003Z"),
    ]});
    let server = JsonServer::start(&db)?;
    let cfg = config(&server);
    let mut sink = cfg.open_sink().await?;
    let upsert = |id: Option<&str>, v: Value| Write {
        record_id: id.map(String::from),
        op: WriteOp::Upsert(row(v)),
    };
    let results = sink
        .apply(&[
            upsert(Some("s1"), json!({"name": "Uno"})),
            upsert(Some("nobody"), json!({"name": "Secret Value"})),
            upsert(None, json!({"name": "New"})),
            Write {
                record_id: Some("s2".into()),
                op: WriteOp::Retire,
            },
            upsert(Some("s3"), json!({"email": "three@example.com"})),
        ])
        .await?;
    assert_eq!(results.len(), 5);

    let updated = results[0].as_ref().map_err(Clone::clone)?;
    let image = updated.image.as_ref().context("image")?;
    assert_eq!(
        (image["name"].clone(), image["address"]["city"].clone()),
        (json!("Uno"), json!("Köln"))
    );
    assert!(
        image["updatedAt"].as_str() > Some("2024-01-01T00:00:00.001Z"),
        "the server's stamp"
    );

    match &results[1] {
        Err(ConnectorError::Record { record_id, reason }) => {
            assert_eq!(record_id, "nobody");
            assert!(reason.contains("404"), "{reason}");
            assert!(!reason.contains("Secret"), "no values in errors: {reason}");
        }
        other => panic!("a 404 is the record's error, got {other:?}"),
    }

    let inserted = results[2].as_ref().map_err(Clone::clone)?;
    assert!(!inserted.record_id.is_empty());
    assert_eq!(
        sink.fetch(&inserted.record_id).await?,
        inserted.image,
        "the image is the record"
    );

    assert_eq!(
        results[3],
        Ok(Applied {
            record_id: "s2".into(),
            image: None,
            unchanged: false,
        })
    );
    assert_eq!(sink.fetch("s2").await?, None);
    let s3 = sink.fetch("s3").await?.context("s3")?;
    assert_eq!(
        (s3["email"].clone(), s3["name"].clone()),
        (json!("three@example.com"), json!("Three"))
    );

    // Retiring what is gone is done (a batch sent again after an outage).
    let again = sink
        .apply(&[Write {
            record_id: Some("s2".into()),
            op: WriteOp::Retire,
        }])
        .await?;
    assert!(again[0].is_ok(), "{again:?}");

    // A 5xx is the API failing, not the record: json-server answers 500 to
    // an insert with an id that exists.
    let failed = sink
        .apply(&[upsert(None, json!({"id": "s1", "name": "Dup"}))])
        .await;
    match failed {
        Err(ConnectorError::Unavailable(msg)) => {
            assert!(msg.contains("500") && !msg.contains("Dup"), "{msg}")
        }
        other => panic!("a 500 makes the batch fail as Unavailable, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn put_updates_merge_and_archive_flag_retires() -> anyhow::Result<()> {
    let db = json!({COLLECTION: [
        customer(json!("p1"), "Put", "2024-01-01T00:00:00.001Z"),
        customer(json!("p2"), "Arch", "2024-01-01T00:00:00.002Z"),
    ]});
    let server = JsonServer::start(&db)?;
    let mut cfg = config(&server);
    cfg.update_method = UpdateMethod::Put;
    cfg.archive_field = Some("archived".into());
    let mut source = cfg.open_source(None).await?;
    read_changes(&mut source, 2).await?;
    let mut sink = cfg.open_sink().await?;
    let results = sink
        .apply(&[
            Write {
                record_id: Some("p1".into()),
                op: WriteOp::Upsert(row(json!({"name": "Put2"}))),
            },
            Write {
                record_id: Some("p2".into()),
                op: WriteOp::Retire,
            },
        ])
        .await?;
    let p1 = results[0]
        .as_ref()
        .map_err(Clone::clone)?
        .image
        .clone()
        .context("image")?;
    assert_eq!(p1["name"], "Put2");
    assert_eq!(p1["address"]["city"], "Köln", "PUT sent the merged record");
    let p2 = results[1]
        .as_ref()
        .map_err(Clone::clone)?
        .image
        .clone()
        .context("image")?;
    assert_eq!(p2["archived"], true, "archived, not deleted");

    // The archived record is captured as a delete.
    let txs = read_until(&mut source, "p2").await?;
    assert!(changes(&txs).contains(&("p2".to_string(), RowChange::Delete)));
    Ok(())
}

#[tokio::test]
async fn hostile_ids_and_values_round_trip() -> anyhow::Result<()> {
    let long_id = "ü".repeat(120) + "-long";
    let ids = [
        "it's \"quoted\"".to_string(),
        "with space".to_string(),
        "ünïcödé/slash".to_string(),
        "100%".to_string(),
        "a/../b".to_string(),
        "?q=1#frag".to_string(),
        "+plus&amp".to_string(),
        long_id,
    ];
    let long_value = "x".repeat(100_000);
    let db = json!({COLLECTION: []});
    let server = JsonServer::start(&db)?;
    let rest = Rest::new(&server)?;
    for id in &ids {
        rest.post(
            json!({"id": id, "name": "Zoë \"Q\" O'Brien\n\t", "note": long_value, "gone": null}),
            None,
        )
        .await?;
    }
    let cfg = config(&server);
    let mut source = cfg.open_source(None).await?;
    let load = read_changes(&mut source, ids.len()).await?;
    let loaded: BTreeSet<String> = changes(&load).into_iter().map(|(id, _)| id).collect();
    assert_eq!(loaded, ids.iter().cloned().collect());
    let one = upserted(&load, &ids[0]).context("loaded")?;
    assert_eq!(one["note"].as_str().map(str::len), Some(100_000));
    assert_eq!(one["gone"], Value::Null, "a null stays a null");

    let mut sink = cfg.open_sink().await?;
    let mut writes: Vec<Write> = ids
        .iter()
        .map(|id| Write {
            record_id: Some(id.clone()),
            op: WriteOp::Upsert(row(json!({"name": format!("renamed {id}")}))),
        })
        .collect();
    // A dot segment cannot be addressed: its own error, the rest applied.
    writes.insert(
        3,
        Write {
            record_id: Some("..".into()),
            op: WriteOp::Upsert(row(json!({"name": "x"}))),
        },
    );
    let results = sink.apply(&writes).await?;
    for (write, result) in writes.iter().zip(&results) {
        let id = write.record_id.as_deref().unwrap_or_default();
        match result {
            Ok(applied) => {
                assert_eq!(applied.record_id, id);
                let name = applied.image.as_ref().map(|i| i["name"].clone());
                assert_eq!(name, Some(json!(format!("renamed {id}"))), "{id:?}");
            }
            Err(ConnectorError::Record { record_id, .. }) if id == ".." => {
                assert_eq!(record_id, "..")
            }
            Err(e) => bail!("{id:?}: {e}"),
        }
    }
    for id in &ids {
        let fetched = sink
            .fetch(id)
            .await?
            .with_context(|| format!("{id:?} fetched"))?;
        assert_eq!(fetched["id"], json!(id));
    }
    // The renames are captured under the same ids.
    let renamed = read_until(
        &mut source,
        ids.last().map(String::as_str).unwrap_or_default(),
    )
    .await?;
    assert!(changes(&renamed).iter().all(|(id, _)| ids.contains(id)));
    Ok(())
}

#[tokio::test]
async fn webhook_makes_a_change_visible_before_the_poll_interval() -> anyhow::Result<()> {
    let db = json!({COLLECTION: [customer(json!("w1"), "Web", "2024-01-01T00:00:00.001Z")]});
    let server = JsonServer::start(&db)?;
    let rest = Rest::new(&server)?;
    let mut cfg = config(&server);
    cfg.poll_interval_ms = 600_000;
    cfg.webhook_listen = Some("127.0.0.1:0".parse()?);
    let mut source = cfg.open_source(None).await?;
    read_changes(&mut source, 1).await?;
    // The first poll, which rereads the start time's record, then a wait
    // of ten minutes.
    read_until(&mut source, "w1").await?;
    let hook = source.webhook_addr().context("webhook listening")?;

    rest.patch("w1", json!({"name": "Hooked"}), None).await?;
    let started = Instant::now();
    let next = tokio::spawn(async move { next_tx(&mut source).await });
    let response = reqwest::Client::new()
        .post(format!("http://{hook}/webhook"))
        .json(&json!({"id": "w1"}))
        .send()
        .await?;
    assert_eq!(response.status(), 202);
    let tx = next.await??;
    assert!(matches!(&tx.changes[..], [c] if c.record_id == "w1"
            && matches!(&c.change, RowChange::Upsert(r) if r["name"] == "Hooked")));
    assert!(
        started.elapsed() < DEADLINE,
        "woken by the webhook, not the poll interval"
    );
    Ok(())
}

#[tokio::test]
async fn api_away_is_unavailable_then_work_resumes() -> anyhow::Result<()> {
    let db = json!({COLLECTION: [customer(json!("u1"), "Up", "2024-01-01T00:00:00.001Z")]});
    let mut server = JsonServer::start(&db)?;
    let rest = Rest::new(&server)?;
    let cfg = config(&server);
    let mut source = cfg.open_source(None).await?;
    let load = read_changes(&mut source, 1).await?;
    let cursor = load[0].cursor.clone().context("cursor")?;
    let mut sink = cfg.open_sink().await?;

    server.stop()?;
    let polled = tokio::time::timeout(DEADLINE, source.next()).await?;
    assert!(
        matches!(polled, Err(ConnectorError::Unavailable(_))),
        "{polled:?}"
    );
    let write = Write {
        record_id: Some("u1".into()),
        op: WriteOp::Upsert(row(json!({"name": "Down"}))),
    };
    let applied = sink.apply(std::slice::from_ref(&write)).await;
    match &applied {
        Err(ConnectorError::Unavailable(msg)) => {
            assert!(msg.contains("u1") && !msg.contains("Down"), "{msg}")
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(matches!(
        sink.fetch("u1").await,
        Err(ConnectorError::Unavailable(_))
    ));

    // Back: the runner opens the halves again and sends the batch again.
    server.start_again()?;
    let mut source = cfg.open_source(Some(cursor)).await?;
    let mut sink = cfg.open_sink().await?;
    let applied = sink.apply(&[write]).await?;
    assert!(applied[0].is_ok(), "{applied:?}");
    rest.post(json!({"id": "u2", "name": "After"}), None)
        .await?;
    let txs = read_until(&mut source, "u2").await?;
    assert!(
        upserted(&txs, "u1").is_some_and(|r| r["name"] == "Down"),
        "the write-back is captured too (the runner drops it as an echo)"
    );
    Ok(())
}
