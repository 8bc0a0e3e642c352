//! The PostgreSQL connector against a real PostgreSQL 15 (wal_level =
//! logical) holding Odoo 17's `res_partner`: the initial load from the
//! slot's snapshot, change capture, cursors and the slot's confirmed
//! position, write-back with origins, per-record errors and hostile values.
//! The Source and Sink are driven directly (the runner is tested on its
//! own).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::Path;
use std::time::Duration;

use mdhub_connectors::contract::{
    Applied, CapturedTx, Connector, ConnectorError, Cursor, RowChange, Sink, Source, Write, WriteOp,
};
use mdhub_connectors::mapping::{Mapping, Row};
use mdhub_connectors::postgres::{PostgresConfig, PostgresConnector, NEW_RECORD, SLICE_ROWS};
use mdhub_schema::Model;
use mdhub_tests::postgres::Postgres;
use mdhub_tests::wait::wait_until;
use serde_json::{json, Value};

/// Deadline for one captured transaction or one awaited state.
const DEADLINE: Duration = Duration::from_secs(20);

const ODOO_SQL: &str = include_str!("../data/odoo_res_partner.sql");

fn start_odoo() -> Postgres {
    let pg = Postgres::start().expect("start PostgreSQL");
    pg.psql(ODOO_SQL).expect("create the Odoo tables");
    pg
}

/// The connector's config for `table` of the test server, the rest default.
fn config(pg: &Postgres, table: &str) -> PostgresConfig {
    PostgresConfig {
        url: Some(pg.url()),
        url_env: None,
        schema: "public".into(),
        table: table.into(),
        key: "id".into(),
        slot: None,
        publication: None,
        archive_column: None,
        modified_column: None,
        origin: None,
    }
}

/// Odoo's partner table, archived through `active`.
fn odoo(pg: &Postgres) -> PostgresConnector {
    let c = PostgresConfig {
        archive_column: Some("active".into()),
        modified_column: Some("write_date".into()),
        ..config(pg, "res_partner")
    };
    PostgresConnector::new("odoo", &c).expect("connector")
}

/// `f` within the deadline.
async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

async fn next_tx<S: Source>(source: &mut S) -> CapturedTx {
    within("a captured transaction", source.next())
        .await
        .expect("next")
        .expect("a PostgreSQL source never ends")
}

/// Reads the load's slices (until `done == total`); returns them.
async fn read_load<S: Source>(source: &mut S, total: u64) -> Vec<CapturedTx> {
    let mut slices = Vec::new();
    let mut done = 0;
    while done < total {
        let tx = next_tx(source).await;
        let load = tx.load.expect("a load slice");
        assert_eq!(tx.cursor, None, "load slices carry no cursor");
        assert_eq!(load.total, Some(total));
        assert!(load.done > done, "progress moves on");
        done = load.done;
        slices.push(tx);
    }
    slices
}

fn upserted(tx: &CapturedTx) -> Vec<(&str, &Row)> {
    tx.changes
        .iter()
        .filter_map(|c| match &c.change {
            RowChange::Upsert(row) => Some((c.record_id.as_str(), row)),
            RowChange::Delete => None,
        })
        .collect()
}

fn psql(pg: &Postgres, sql: &str) -> String {
    pg.psql(sql).expect("psql")
}

fn lsn_value(text: &str) -> u64 {
    let (hi, lo) = text.trim().split_once('/').expect("an LSN");
    (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap()
}

fn cursor_lsn(cursor: &Option<Cursor>) -> u64 {
    lsn_value(cursor.as_ref().and_then(Value::as_str).expect("a cursor"))
}

fn confirmed_flush(pg: &Postgres, slot: &str) -> u64 {
    lsn_value(&psql(
        pg,
        &format!("SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '{slot}'"),
    ))
}

async fn slot_released(pg: &Postgres, slot: &str) {
    let q = format!("SELECT active FROM pg_replication_slots WHERE slot_name = '{slot}'");
    wait_until("the slot to be released", DEADLINE, || async {
        psql(pg, &q) == "f"
    })
    .await
    .unwrap();
}

/// Ends capture and waits until the server has let go of the slot: a
/// logical walsender whose client is gone without confirming holds up the
/// harness's fast shutdown.
async fn close<S: Source>(source: S, pg: &Postgres, connector: &PostgresConnector) {
    drop(source);
    slot_released(pg, connector.slot()).await;
}

fn upsert(record_id: Option<&str>, row: Value) -> Write {
    let Value::Object(map) = row else {
        panic!("row")
    };
    Write {
        record_id: record_id.map(str::to_string),
        op: WriteOp::Upsert(map.into_iter().collect::<BTreeMap<_, _>>()),
    }
}

#[tokio::test]
async fn initial_load_and_concurrent_inserts_arrive_exactly_once() {
    let pg = start_odoo();
    let before = 2 * SLICE_ROWS as u64 + 500;
    psql(
        &pg,
        &format!(
            "INSERT INTO res_partner (name, email, write_date) \
             SELECT 'Partner ' || i, 'p' || i || '@example.com', now() AT TIME ZONE 'UTC' \
             FROM generate_series(1, {before}) i"
        ),
    );
    let connector = odoo(&pg);
    let mut source = connector.open_source(None).await.expect("open");

    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let count = |seen: &mut BTreeMap<String, usize>, tx: &CapturedTx| {
        for (id, _) in upserted(tx) {
            *seen.entry(id.to_string()).or_default() += 1;
        }
    };
    // The first slice, then rows committed while the load goes on, each
    // in its own transaction.
    let first = next_tx(&mut source).await;
    assert!(first.position.starts_with("load:"), "{}", first.position);
    assert_eq!(first.changes.len(), SLICE_ROWS);
    count(&mut seen, &first);
    let during = 40u64;
    for i in 0..during {
        psql(
            &pg,
            &format!("INSERT INTO res_partner (name) VALUES ('During {i}')"),
        );
    }
    let mut done = first.load.unwrap().done;
    while done < before {
        let tx = next_tx(&mut source).await;
        done = tx.load.expect("still loading").done;
        count(&mut seen, &tx);
    }
    // Then the stream: the rows inserted during the load, once each.
    let total = before + during;
    while (seen.len() as u64) < total {
        let tx = next_tx(&mut source).await;
        assert!(tx.load.is_none() && tx.cursor.is_some());
        count(&mut seen, &tx);
    }
    // A sentinel after everything: nothing else came in between.
    psql(&pg, "INSERT INTO res_partner (name) VALUES ('sentinel')");
    let last = next_tx(&mut source).await;
    assert_eq!(upserted(&last).len(), 1);
    assert_eq!(seen.len() as u64, total);
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "rows sent more than once: {twice:?}");
    close(source, &pg, &connector).await;
}

#[tokio::test]
async fn inserts_updates_archives_and_deletes_are_captured() {
    let pg = start_odoo();
    psql(&pg, "INSERT INTO res_partner (name) VALUES ('Seed')");
    let connector = odoo(&pg);
    let mut source = connector.open_source(None).await.expect("open");
    read_load(&mut source, 1).await;

    psql(
        &pg,
        "INSERT INTO res_partner (id, name, is_company, country_id, write_date, vat) \
         VALUES (100, 'Ada Lovelace', false, 231, '2024-03-01 10:00:00.25', NULL)",
    );
    let tx = next_tx(&mut source).await;
    assert!(!tx.own_write);
    assert!(tx.committed_at.is_some());
    assert_eq!(tx.changes.len(), 1);
    let c = &tx.changes[0];
    assert_eq!(c.record_id, "100");
    let RowChange::Upsert(row) = &c.change else {
        panic!("an upsert")
    };
    assert_eq!(row["id"], json!(100));
    assert_eq!(row["is_company"], json!(false));
    assert_eq!(row["country_id"], json!(231));
    assert_eq!(row["vat"], Value::Null);
    assert_eq!(row["write_date"], json!("2024-03-01T10:00:00.25"));
    assert_eq!(
        c.observed_at.map(|t| t.unix_timestamp()),
        Some(1_709_287_200),
        "observed_at is write_date, read as UTC"
    );
    // The position is the commit LSN, the cursor the end of the commit.
    assert!(lsn_value(&tx.position) < cursor_lsn(&tx.cursor));

    // Two changes in one transaction: one CapturedTx, in commit order.
    psql(
        &pg,
        "BEGIN; UPDATE res_partner SET email = 'ada@example.com' WHERE id = 100; \
         INSERT INTO res_partner (id, name) VALUES (101, 'Charles'); COMMIT;",
    );
    let tx = next_tx(&mut source).await;
    let ids: Vec<_> = tx.changes.iter().map(|c| c.record_id.as_str()).collect();
    assert_eq!(ids, ["100", "101"]);
    assert_eq!(upserted(&tx)[0].1["email"], json!("ada@example.com"));

    // Archiving is a delete; so is a real delete, carrying only the key.
    psql(&pg, "UPDATE res_partner SET active = false WHERE id = 100");
    let tx = next_tx(&mut source).await;
    assert_eq!(tx.changes[0].record_id, "100");
    assert_eq!(tx.changes[0].change, RowChange::Delete);
    psql(&pg, "DELETE FROM res_partner WHERE id = 101");
    let tx = next_tx(&mut source).await;
    assert_eq!(tx.changes[0].record_id, "101");
    assert_eq!(tx.changes[0].change, RowChange::Delete);
    assert_eq!(tx.changes[0].observed_at, tx.committed_at);

    // A changed key: the old record is deleted, the new one upserted.
    psql(&pg, "UPDATE res_partner SET id = 7 WHERE id = 1");
    let tx = next_tx(&mut source).await;
    let got: Vec<_> = tx
        .changes
        .iter()
        .map(|c| (c.record_id.as_str(), matches!(c.change, RowChange::Delete)))
        .collect();
    assert_eq!(got, [("1", true), ("7", false)]);
    close(source, &pg, &connector).await;
}

#[tokio::test]
async fn an_unchanged_toasted_comment_is_left_out_of_the_row() {
    let pg = start_odoo();
    let connector = odoo(&pg);
    let mut source = connector.open_source(None).await.expect("open");
    // 64 kB of md5 hex compresses badly: stored out of line (TOASTed).
    psql(
        &pg,
        "INSERT INTO res_partner (id, name, comment) VALUES (1, 'Big', \
         (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 2000) i))",
    );
    let tx = next_tx(&mut source).await;
    let comment = upserted(&tx)[0].1["comment"]
        .as_str()
        .expect("comment")
        .len();
    assert_eq!(comment, 64_000);

    psql(&pg, "UPDATE res_partner SET name = 'Bigger' WHERE id = 1");
    let tx = next_tx(&mut source).await;
    let (_, row) = upserted(&tx)[0];
    assert_eq!(row["name"], json!("Bigger"));
    assert!(
        !row.contains_key("comment"),
        "unchanged TOAST is absent, not null"
    );

    psql(&pg, "UPDATE res_partner SET comment = 'short' WHERE id = 1");
    let tx = next_tx(&mut source).await;
    assert_eq!(upserted(&tx)[0].1["comment"], json!("short"));
    close(source, &pg, &connector).await;
}

#[tokio::test]
async fn restart_from_a_cursor_rereads_what_was_not_confirmed() {
    let pg = start_odoo();
    let connector = odoo(&pg);
    let slot = connector.slot().to_string();
    let mut source = connector.open_source(None).await.expect("open");
    let start = confirmed_flush(&pg, &slot);

    psql(&pg, "INSERT INTO res_partner (id, name) VALUES (1, 'A')");
    let a = next_tx(&mut source).await;
    psql(&pg, "INSERT INTO res_partner (id, name) VALUES (2, 'B')");
    let b = next_tx(&mut source).await;
    // Read but never confirmed: the slot has not passed A (it may have
    // moved over WAL of other tables before it).
    drop(source);
    slot_released(&pg, &slot).await;
    let held = confirmed_flush(&pg, &slot);
    assert!(
        held >= start && held <= lsn_value(&a.position),
        "{held} {start}"
    );

    // From A's cursor: B again, with the same position; A is not re-read.
    let mut source = connector
        .open_source(a.cursor.clone())
        .await
        .expect("reopen");
    let again = next_tx(&mut source).await;
    assert_eq!(again.position, b.position);
    assert_eq!(again.cursor, b.cursor);
    assert_eq!(again.changes, b.changes);

    // Confirmed: the slot moves there (or past it, where the server wrote
    // only WAL of other tables since).
    source.confirm(b.cursor.as_ref().unwrap()).await.unwrap();
    let want = cursor_lsn(&b.cursor);
    wait_until("the slot to confirm B", DEADLINE, || async {
        confirmed_flush(&pg, &slot) >= want
    })
    .await
    .unwrap();

    psql(&pg, "INSERT INTO res_partner (id, name) VALUES (3, 'C')");
    let c = next_tx(&mut source).await;
    drop(source);
    slot_released(&pg, &slot).await;
    let c_lsn = lsn_value(&c.position);
    assert!(
        confirmed_flush(&pg, &slot) <= c_lsn,
        "C was never confirmed: the slot stays before it"
    );
    let mut source = connector
        .open_source(b.cursor.clone())
        .await
        .expect("reopen");
    let again = next_tx(&mut source).await;
    assert_eq!(again.position, c.position);
    assert_eq!(upserted(&again)[0].0, "3");

    // No cursor: a slot left over is dropped and the load runs again.
    drop(source);
    slot_released(&pg, &slot).await;
    let mut source = connector.open_source(None).await.expect("reload");
    let slices = read_load(&mut source, 3).await;
    assert_eq!(slices.iter().map(|s| s.changes.len()).sum::<usize>(), 3);
    close(source, &pg, &connector).await;
}

#[tokio::test]
async fn an_idle_slot_moves_on_while_other_tables_are_written() {
    let pg = start_odoo();
    let connector = odoo(&pg);
    let slot = connector.slot().to_string();
    let mut source = connector.open_source(None).await.expect("open");
    psql(&pg, "INSERT INTO res_partner (id, name) VALUES (1, 'A')");
    let a = next_tx(&mut source).await;
    source.confirm(a.cursor.as_ref().unwrap()).await.unwrap();
    let after_a = cursor_lsn(&a.cursor);

    // WAL of a table outside the publication: nothing to capture, but the
    // slot must not hold that WAL back.
    psql(&pg, "CREATE TABLE other_app (x int)");
    psql(
        &pg,
        "INSERT INTO other_app SELECT generate_series(1, 10000)",
    );
    let written = lsn_value(&psql(&pg, "SELECT pg_current_wal_lsn()"));
    assert!(written > after_a);
    tokio::select! {
        tx = source.next() => panic!("nothing of res_partner changed, yet got {tx:?}"),
        moved = wait_until("the idle slot to move past A", DEADLINE, || async {
            confirmed_flush(&pg, &slot) > after_a
        }) => moved.unwrap(),
    }
    close(source, &pg, &connector).await;
}

#[tokio::test]
async fn sink_writes_come_back_as_own_writes_with_the_image_capture_and_fetch_give() {
    let pg = start_odoo();
    psql(
        &pg,
        "INSERT INTO res_partner (id, name, active) VALUES (1, 'Old', true)",
    );
    let connector = odoo(&pg);
    let mut source = connector.open_source(None).await.expect("open");
    read_load(&mut source, 1).await;
    let mut sink = connector.open_sink().await.expect("sink");

    let hostile = json!({
        "name": "O'Brien \"Bob\" %s /x; DROP TABLE res_partner;--",
        "street": "Straße 1 ☃ 東京 \u{1F600}",
        "comment": "x".repeat(10_000),
        "email": null,
        "is_company": true,
        "country_id": 57,
        "write_date": "2024-05-06T07:08:09.123456",
    });
    let applied = sink
        .apply(&[upsert(Some("1"), hostile.clone())])
        .await
        .unwrap();
    let Ok(Applied {
        record_id,
        image: Some(image),
        ..
    }) = &applied[0]
    else {
        panic!("{applied:?}")
    };
    assert_eq!(record_id, "1");
    for (k, v) in hostile.as_object().unwrap() {
        assert_eq!(&image[k], v, "column {k}");
    }
    assert_eq!(
        image["active"],
        json!(true),
        "the full row, not only the written columns"
    );

    let tx = next_tx(&mut source).await;
    assert!(tx.own_write, "the sink's transaction carries our origin");
    assert_eq!(upserted(&tx), [("1", image)], "capture == image");
    assert_eq!(
        sink.fetch("1").await.unwrap().as_ref(),
        Some(image),
        "fetch == image"
    );
    assert_eq!(sink.fetch("999").await.unwrap(), None);
    assert_eq!(sink.fetch("not a number").await.unwrap(), None);

    // write_date is set to now by a write that does not set it.
    let before = psql(&pg, "SELECT now() AT TIME ZONE 'UTC'");
    let applied = sink
        .apply(&[upsert(Some("1"), json!({"city": "Köln"}))])
        .await
        .unwrap();
    let image = applied[0].as_ref().unwrap().image.clone().unwrap();
    assert!(image["write_date"].as_str().unwrap() >= before.replace(' ', "T").as_str());
    assert!(next_tx(&mut source).await.own_write);

    // Someone else's edit is not ours.
    psql(&pg, "UPDATE res_partner SET city = 'Bonn' WHERE id = 1");
    assert!(!next_tx(&mut source).await.own_write);
    close(source, &pg, &connector).await;
}

#[tokio::test]
async fn a_refused_row_is_reported_and_the_rest_of_the_batch_commits() {
    let pg = start_odoo();
    psql(
        &pg,
        "INSERT INTO res_partner (id, name, zip) VALUES (1, 'One', '1'), (2, 'Two', '2'), \
         (3, 'Three', '3'); SELECT setval('res_partner_id_seq', 3); \
         ALTER TABLE res_partner ADD CONSTRAINT zip_len CHECK (length(zip) < 50);",
    );
    let connector = odoo(&pg);
    let mut sink = connector.open_sink().await.expect("sink");
    let secret = "SECRET-VALUE-\u{1F600}";
    let writes = [
        upsert(Some("1"), json!({"city": "Paris"})),
        upsert(Some("2"), json!({"country_id": 9999})),
        upsert(Some("2"), json!({"is_company": secret})),
        upsert(
            None,
            json!({"name": "New \"one\"", "email": "new@example.com"}),
        ),
        upsert(Some("3"), json!({"nickname": secret})),
        upsert(
            Some("2"),
            json!({"zip": format!("{secret}{}", "9".repeat(60))}),
        ),
        upsert(Some("404"), json!({"city": "Nowhere"})),
        Write {
            record_id: Some("3".into()),
            op: WriteOp::Retire,
        },
        upsert(Some("2"), json!({"street": "Main St\0"})),
        upsert(Some("two"), json!({"city": "Rome"})),
    ];
    let results = sink.apply(&writes).await.expect("the batch");
    assert_eq!(results.len(), writes.len());
    let reason = |i: usize| match &results[i] {
        Err(ConnectorError::Record { record_id, reason }) => {
            assert!(!reason.contains("SECRET"), "no values in errors: {reason}");
            (record_id.clone(), reason.clone())
        }
        other => panic!("write {i}: {other:?}"),
    };
    assert!(results[0].is_ok());
    let (id, r) = reason(1);
    assert_eq!(id, "2");
    assert!(r.contains("res_partner_country_id_fkey"), "{r}");
    let (_, r) = reason(2);
    assert!(
        r.contains("column is_company") && r.contains("boolean"),
        "{r}"
    );
    let new_id = results[3].as_ref().expect("insert").record_id.clone();
    assert_eq!(new_id, "4");
    let (_, r) = reason(4);
    assert!(r.contains("no column nickname"), "{r}");
    let (_, r) = reason(5);
    assert!(r.contains("column zip") || r.contains("zip_len"), "{r}");
    let (id, r) = reason(6);
    assert_eq!(id, "404");
    assert!(r.contains("no row"), "{r}");
    assert_eq!(results[7].as_ref().unwrap().image, None);
    let (_, r) = reason(8);
    assert!(r.contains("column street"), "{r}");
    let (_, r) = reason(9);
    assert!(r.contains("column id"), "{r}");

    assert_eq!(
        psql(
            &pg,
            "SELECT id, city, country_id, is_company, zip, active FROM res_partner ORDER BY id"
        ),
        "1|Paris||f|1|t\n2|||f|2|t\n3|||f|3|f\n4|||f||t"
    );

    // Without an archive column a retire deletes.
    let deleting = PostgresConnector::new("odoo2", &config(&pg, "res_partner")).unwrap();
    let mut sink = deleting.open_sink().await.expect("sink");
    let r = sink
        .apply(&[
            Write {
                record_id: Some("4".into()),
                op: WriteOp::Retire,
            },
            Write {
                record_id: None,
                op: WriteOp::Retire,
            },
        ])
        .await
        .unwrap();
    assert!(r[0].is_ok());
    assert!(
        matches!(&r[1], Err(ConnectorError::Record { record_id, .. }) if record_id == NEW_RECORD)
    );
    assert_eq!(
        psql(&pg, "SELECT count(*) FROM res_partner WHERE id = 4"),
        "0"
    );
}

#[tokio::test]
async fn hostile_keys_names_and_types_read_the_same_every_way() {
    let pg = Postgres::start().expect("start");
    psql(
        &pg,
        r#"CREATE SCHEMA "Sales ""EU""";
           CREATE TABLE "Sales ""EU"""."odd table" (
             "key col" text PRIMARY KEY, "na""me" varchar(20000), n numeric, f float8,
             j jsonb, ts timestamptz, d date, flags int[], amount int8, ok bool)"#,
    );
    let c = PostgresConfig {
        schema: "Sales \"EU\"".into(),
        key: "key col".into(),
        ..config(&pg, "odd table")
    };
    let connector = PostgresConnector::new("hostile", &c).unwrap();
    let mut source = connector.open_source(None).await.expect("open");
    let mut sink = connector.open_sink().await.expect("sink");
    let keys = [
        "it's".to_string(),
        "with space".into(),
        "ünï ☃ 東京".into(),
        "100%".into(),
        "a/b\\c".into(),
        "\"quoted\"".into(),
        "k".repeat(2000),
    ];
    for key in &keys {
        let row = json!({
            "key col": key,
            "na\"me": format!("{key}{}", "v".repeat(10_000)),
            "n": 12.5, "f": 0.1, "j": {"a": [1, "x"], "b": null},
            "ts": "2024-03-01T10:00:00+02:00", "d": "2024-02-29",
            "flags": null, "amount": 9_007_199_254_740_993i64, "ok": false,
        });
        let applied = sink.apply(&[upsert(None, row)]).await.unwrap();
        let applied = applied[0].as_ref().expect("insert");
        assert_eq!(&applied.record_id, key);
        let image = applied.image.as_ref().unwrap();
        assert_eq!(image["ts"], json!("2024-03-01T08:00:00+00:00"));
        assert_eq!(image["amount"], json!(9_007_199_254_740_993i64));
        let tx = next_tx(&mut source).await;
        assert_eq!(upserted(&tx), [(key.as_str(), image)], "capture == image");
        assert_eq!(sink.fetch(key).await.unwrap().as_ref(), Some(image));
    }
    // Rows written by others, with NULLs and the odd values, read the same
    // loaded, streamed and fetched.
    psql(
        &pg,
        r#"INSERT INTO "Sales ""EU"""."odd table" VALUES
           ('nulls', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
           ('odd', 'x', 'NaN', '-Infinity', '[1.0, {"k": "v"}]', 'infinity', '0044-03-15 BC',
            '{1,2}', -1, true)"#,
    );
    let tx = next_tx(&mut source).await;
    let streamed: BTreeMap<&str, &Row> = upserted(&tx).into_iter().collect();
    assert_eq!(streamed["nulls"]["n"], Value::Null);
    assert_eq!(streamed["odd"]["n"], json!("NaN"));
    assert_eq!(streamed["odd"]["flags"], json!("{1,2}"));
    for (key, row) in &streamed {
        assert_eq!(
            sink.fetch(key).await.unwrap().as_ref(),
            Some(*row),
            "fetch {key}"
        );
    }
    drop(source);
    slot_released(&pg, connector.slot()).await;
    let mut source = connector.open_source(None).await.expect("reload");
    let loaded: Vec<CapturedTx> = read_load(&mut source, keys.len() as u64 + 2).await;
    let loaded: BTreeMap<&str, &Row> = loaded.iter().flat_map(upserted).collect();
    for (key, row) in &streamed {
        assert_eq!(loaded[key], *row, "load == stream for {key}");
    }
    close(source, &pg, &connector).await;
}

#[tokio::test]
async fn a_stopped_database_is_unavailable_not_a_panic() {
    let mut pg = start_odoo();
    let connector = odoo(&pg);
    let mut source = connector.open_source(None).await.expect("open");
    let mut sink = connector.open_sink().await.expect("sink");
    psql(&pg, "INSERT INTO res_partner (id, name) VALUES (1, 'x')");
    next_tx(&mut source).await;
    pg.stop_immediate().expect("stop");

    let unavailable = |r: Result<(), ConnectorError>, what: &str| match r {
        Err(ConnectorError::Unavailable(_)) => {}
        other => panic!("{what}: {other:?}"),
    };
    unavailable(within("next", source.next()).await.map(drop), "next");
    unavailable(
        sink.apply(&[upsert(Some("1"), json!({"city": "x"}))])
            .await
            .map(drop),
        "apply",
    );
    unavailable(sink.fetch("1").await.map(drop), "fetch");
    unavailable(connector.open_source(None).await.map(drop), "open_source");
    unavailable(connector.open_sink().await.map(drop), "open_sink");
}

#[tokio::test]
async fn layout_and_privilege_problems_are_fatal_and_say_what_to_change() {
    let pg = start_odoo();
    let fatal = |r: Result<(), ConnectorError>| match r {
        Err(ConnectorError::Fatal(m)) => m,
        other => panic!("not fatal: {other:?}"),
    };
    let missing = PostgresConnector::new("x", &config(&pg, "res_partners")).unwrap();
    let m = fatal(missing.open_source(None).await.map(drop));
    assert!(m.contains("public.res_partners does not exist"), "{m}");
    let m = fatal(missing.open_sink().await.map(drop));
    assert!(m.contains("does not exist"), "{m}");

    let bad_col = PostgresConfig {
        archive_column: Some("activ".into()),
        ..config(&pg, "res_partner")
    };
    let m = fatal(
        PostgresConnector::new("x", &bad_col)
            .unwrap()
            .open_source(None)
            .await
            .map(drop),
    );
    assert!(m.contains("no column activ"), "{m}");

    psql(
        &pg,
        "CREATE ROLE plain LOGIN; GRANT SELECT ON res_partner TO plain",
    );
    let url = pg.url().replace(&format!("{}@", pg.user()), "plain@");
    let c = PostgresConfig {
        url: Some(url),
        ..config(&pg, "res_partner")
    };
    let plain = PostgresConnector::new("x", &c).unwrap();
    let m = fatal(plain.open_source(None).await.map(drop));
    assert!(m.contains("REPLICATION"), "{m}");
    let m = fatal(plain.open_sink().await.map(drop));
    assert!(m.contains("GRANT UPDATE, INSERT, DELETE"), "{m}");
}

#[test]
fn the_odoo_preset_maps_a_captured_partner() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../connectors/presets/odoo_res_partner.toml");
    let mapping = Mapping::from_file(&path, &Model::default_customer()).expect("preset");
    let row: Row = serde_json::from_value(json!({
        "id": 7, "name": "Ada Lovelace", "email": "Ada@Example.com", "country_id": 57,
        "is_company": false, "zip": "10115", "function": "Analyst", "vat": "DE123456789",
        "lang": "en_US", "active": true, "comment": "not mapped",
    }))
    .unwrap();
    let fields = mapping.to_canonical(&row).expect("maps");
    assert_eq!(fields["country"], json!("DE"));
    assert_eq!(fields["customer_type"], json!("person"));
    assert_eq!(fields["full_name"], json!("Ada Lovelace"));
    assert_eq!(fields["job_title"], json!("Analyst"));
    assert_eq!(fields["postal_code"], json!("10115"));
    let back = mapping.to_system(&fields).expect("writes back");
    assert_eq!(back["country_id"], json!(57));
    assert_eq!(back["is_company"], json!(false));
    // Every country of the test database's res_country maps to its code.
    let country_rows = || {
        ODOO_SQL
            .lines()
            .filter(|l| l.contains("en_US"))
            .filter_map(|l| l.trim().strip_prefix('('))
    };
    let countries: BTreeSet<&str> = country_rows()
        .filter_map(|l| l.split(", ").nth(1))
        .filter(|c| c.len() == 4)
        .collect();
    assert_eq!(countries.len(), 249);
    for line in country_rows() {
        let mut parts = line.split(", ");
        let (Some(id), Some(code)) = (parts.next(), parts.next()) else {
            continue;
        };
        if code.len() != 4 || id.parse::<u32>().is_err() {
            continue;
        }
        let row: Row = [("country_id".to_string(), json!(id.parse::<u32>().unwrap()))].into();
        let f = mapping.to_canonical(&row).unwrap();
        assert_eq!(
            f["country"],
            json!(code.trim_matches('\'')),
            "country id {id}"
        );
    }
}
