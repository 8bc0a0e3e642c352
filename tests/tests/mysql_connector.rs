//! The MariaDB/MySQL connector against a real MariaDB holding SuiteCRM 7's
//! contact and e-mail tables: the initial load from a consistent snapshot
//! with writes going on, capture of inserts, updates, deletes and archiving
//! as one `CapturedTx` per transaction, the primary e-mail relation, restart
//! from a cursor, write-back marked as the connector's own, refused rows,
//! hostile values, one JSON form for a row however it was read, and the
//! server going away.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mdhub_connectors::contract::{
    Applied, CapturedTx, Connector, ConnectorError, Row, RowChange, Sink, Source, Write, WriteOp,
};
use mdhub_connectors::mysql::{MysqlConfig, MysqlSource, EMAIL_COLUMN};
use mdhub_tests::mariadb::MariaDb;
use mdhub_tests::wait::wait_until_blocking;
use serde_json::{json, Value};

/// The connector's replica id (the test server's is 1).
const REPLICA_ID: u32 = 4101;

/// Longest wait for one captured transaction.
const TX_DEADLINE: Duration = Duration::from_secs(15);

fn suitecrm() -> anyhow::Result<MariaDb> {
    let db = MariaDb::start()?;
    db.run_file(&Path::new(env!("CARGO_MANIFEST_DIR")).join("data/suitecrm.sql"))?;
    Ok(db)
}

fn contacts_config(db: &MariaDb) -> MysqlConfig {
    MysqlConfig {
        url: Some(db.url()),
        url_env: None,
        table: "contacts".into(),
        key: "id".into(),
        server_id: REPLICA_ID,
        archive_column: Some("deleted".into()),
        modified_column: Some("date_modified".into()),
        suitecrm_email: true,
        load_batch: 1000,
    }
}

async fn next(source: &mut MysqlSource) -> Result<CapturedTx, ConnectorError> {
    match tokio::time::timeout(TX_DEADLINE, source.next()).await {
        Ok(Ok(Some(tx))) => Ok(tx),
        Ok(Ok(None)) => panic!("the MariaDB source ended"),
        Ok(Err(e)) => Err(e),
        Err(_) => panic!("no captured transaction within {TX_DEADLINE:?}"),
    }
}

/// Reads transactions until one has a change (skipping the empty ones of
/// other tables and the load's empty last slice).
async fn next_with_changes(source: &mut MysqlSource) -> CapturedTx {
    loop {
        let tx = next(source).await.expect("a captured transaction");
        if !tx.changes.is_empty() {
            return tx;
        }
    }
}

fn upsert_row(tx: &CapturedTx, id: &str) -> Row {
    let c = tx
        .changes
        .iter()
        .find(|c| c.record_id == id)
        .unwrap_or_else(|| panic!("no change of {id} in {tx:?}"));
    match &c.change {
        RowChange::Upsert(row) => row.clone(),
        RowChange::Delete => panic!("{id} was deleted, not upserted"),
    }
}

fn row(pairs: &[(&str, Value)]) -> Row {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn sql_text(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_load_with_concurrent_writes_has_every_row_exactly_once() -> anyhow::Result<()> {
    let db = suitecrm()?;
    db.query(
        "INSERT INTO contacts (id, first_name, last_name, date_modified, deleted) \
         SELECT CONCAT('seed-', LPAD(seq, 4, '0')), 'Seed', CONCAT('N', seq), UTC_TIMESTAMP(), 0 \
         FROM seq_1_to_1000; \
         INSERT INTO contacts (id, last_name, deleted) \
         SELECT CONCAT('gone-', seq), 'Archived', 1 FROM seq_1_to_5;",
    )?;
    // A writer inserts one contact per autocommit transaction before, during
    // and after the load, until told to stop: those committed before the
    // snapshot are loaded, the others streamed.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (handle, stop) = (MariaDbHandle(db.port()), stop.clone());
        std::thread::spawn(move || -> anyhow::Result<u32> {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) || n < 40 {
                handle.query(&format!(
                    "INSERT INTO contacts (id, last_name, deleted) VALUES ('live-{n:04}', 'Live', 0)"
                ))?;
                n += 1;
            }
            Ok(n)
        })
    };
    wait_until_blocking("the writer's first rows", Duration::from_secs(20), || {
        db.query("SELECT COUNT(*) FROM contacts WHERE id LIKE 'live-%'")
            .is_ok_and(|n| n.parse::<u32>().unwrap_or(0) >= 5)
    })?;
    let mut config = contacts_config(&db);
    config.load_batch = 100;
    let mut source = config.open_source(None).await?;

    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    let mut load_positions = BTreeSet::new();
    let mut loaded = 0;
    loop {
        let tx = next(&mut source).await?;
        let progress = tx.load.expect("load slices carry progress");
        assert!(
            load_positions.insert(tx.position.clone()),
            "{}",
            tx.position
        );
        assert!(!tx.own_write);
        for c in &tx.changes {
            assert!(matches!(c.change, RowChange::Upsert(_)));
            *seen.entry(c.record_id.clone()).or_default() += 1;
        }
        loaded += tx.changes.len() as u64;
        assert_eq!(progress.done, loaded);
        if tx.cursor.is_some() {
            assert_eq!(progress.total, Some(loaded), "the count is the snapshot's");
            break;
        }
        assert_eq!(tx.changes.len(), 100, "full slices before the last");
    }
    let live_loaded = seen.keys().filter(|k| k.starts_with("live-")).count();
    assert!(live_loaded >= 5, "rows committed before the load are in it");
    stop.store(true, Ordering::SeqCst);
    let written = writer.join().expect("writer thread")?;
    let expected: BTreeSet<String> = (1..=1000)
        .map(|i| format!("seed-{i:04}"))
        .chain((0..written).map(|i| format!("live-{i:04}")))
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while seen.len() < expected.len() {
        assert!(tokio::time::Instant::now() < deadline, "rows missing");
        let tx = next(&mut source).await?;
        assert!(tx.load.is_none() && tx.cursor.is_some());
        for c in &tx.changes {
            *seen.entry(c.record_id.clone()).or_default() += 1;
        }
    }
    assert_eq!(seen.keys().cloned().collect::<BTreeSet<_>>(), expected);
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "rows seen more than once: {twice:?}");
    assert!(
        live_loaded < written as usize,
        "rows committed after the snapshot are streamed"
    );
    Ok(())
}

/// Runs SQL on the test server from another thread (the `MariaDb` handle
/// stays with the test).
struct MariaDbHandle(u16);

impl MariaDbHandle {
    fn query(&self, sql: &str) -> anyhow::Result<String> {
        mdhub_tests::server_process::run_command(
            std::process::Command::new("mariadb")
                .args([
                    "--no-defaults",
                    "--batch",
                    "--skip-column-names",
                    "--protocol=TCP",
                ])
                .args(["-h", "127.0.0.1", "-P", &self.0.to_string(), "-u", "root"])
                .arg("--default-character-set=utf8mb4")
                .args(["mdhub", "-e", sql]),
            "mariadb",
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_are_captured_per_transaction_and_read_again_from_a_cursor() -> anyhow::Result<()> {
    let db = suitecrm()?;
    let config = contacts_config(&db);
    let mut source = config.open_source(None).await?;
    // An empty table: one empty last slice, with the cursor to stream from.
    let first = next(&mut source).await?;
    assert!(first.changes.is_empty() && first.cursor.is_some());

    db.query(
        "INSERT INTO contacts (id, first_name, last_name, birthdate, do_not_call, date_modified) \
         VALUES ('a', 'Ada', 'Lovelace', '1815-12-10', 1, '2024-03-01 10:00:05')",
    )?;
    let insert = next_with_changes(&mut source).await;
    let a = upsert_row(&insert, "a");
    assert_eq!(a["first_name"], "Ada");
    assert_eq!(a["birthdate"], "1815-12-10");
    assert_eq!(a["do_not_call"], 1);
    assert_eq!(a["date_modified"], "2024-03-01T10:00:05");
    assert_eq!(a["title"], Value::Null);
    assert_eq!(a[EMAIL_COLUMN], Value::Null, "no primary address yet");
    assert_eq!(
        insert.changes[0].observed_at.map(|t| t.unix_timestamp()),
        Some(1709287205)
    );
    assert!(insert.committed_at.is_some() && !insert.own_write);
    let cursor_after_insert = insert.cursor.clone().expect("cursor");
    assert!(insert.position.starts_with("binlog.") && insert.position.contains(':'));

    db.query(
        "START TRANSACTION; \
         UPDATE contacts SET title = 'Countess' WHERE id = 'a'; \
         INSERT INTO contacts (id, last_name) VALUES ('b', 'Babbage'); \
         COMMIT;",
    )?;
    let both = next_with_changes(&mut source).await;
    assert_eq!(both.changes.len(), 2, "one transaction, two changes");
    assert_eq!(upsert_row(&both, "a")["title"], "Countess");
    assert_eq!(upsert_row(&both, "b")["last_name"], "Babbage");

    db.query("UPDATE contacts SET deleted = 1 WHERE id = 'b'")?;
    let archived = next_with_changes(&mut source).await;
    assert_eq!(archived.changes[0].record_id, "b");
    assert_eq!(archived.changes[0].change, RowChange::Delete);

    db.query("CREATE TABLE other (x int); INSERT INTO other VALUES (1)")?;
    db.query("DELETE FROM contacts WHERE id = 'a'")?;
    let deleted = next_with_changes(&mut source).await;
    assert_eq!(deleted.changes.len(), 1);
    assert_eq!(deleted.changes[0].record_id, "a");
    assert_eq!(deleted.changes[0].change, RowChange::Delete);

    // A new source from the cursor after the insert reads the same
    // transactions again, with the same positions: nothing missed.
    drop(source);
    let mut again = config.open_source(Some(cursor_after_insert)).await?;
    let mut replay = Vec::new();
    while replay.len() < 3 {
        replay.push(next_with_changes(&mut again).await);
    }
    for (was, now) in [&both, &archived, &deleted].into_iter().zip(&replay) {
        assert_eq!(was.position, now.position);
        assert_eq!(was.cursor, now.cursor);
        assert_eq!(was.changes.len(), now.changes.len());
    }
    assert_eq!(replay[2].changes, deleted.changes);
    Ok(())
}

fn add_email(
    db: &MariaDb,
    n: u32,
    contact: &str,
    module: &str,
    address: &str,
) -> anyhow::Result<()> {
    db.query(&format!(
        "START TRANSACTION; \
         INSERT INTO email_addresses (id, email_address, email_address_caps, deleted) \
         VALUES ('ea-{n}', {a}, UPPER({a}), 0); \
         INSERT INTO email_addr_bean_rel (id, email_address_id, bean_id, bean_module, \
         primary_address, deleted, date_modified) \
         VALUES ('rel-{n}', 'ea-{n}', {c}, '{module}', 1, 0, UTC_TIMESTAMP()); COMMIT;",
        a = sql_text(address),
        c = sql_text(contact),
    ))?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_email_changes_are_captured_as_contact_upserts() -> anyhow::Result<()> {
    let db = suitecrm()?;
    db.query("INSERT INTO contacts (id, last_name) VALUES ('c1', 'Curie'), ('c2', 'Meitner')")?;
    add_email(&db, 1, "c1", "Contacts", "marie@example.org")?;
    let config = contacts_config(&db);
    let mut source = config.open_source(None).await?;
    let load = next(&mut source).await?;
    assert_eq!(upsert_row(&load, "c1")[EMAIL_COLUMN], "marie@example.org");
    assert_eq!(upsert_row(&load, "c2")[EMAIL_COLUMN], Value::Null);

    add_email(&db, 2, "c2", "Contacts", "lise@example.org")?;
    let tx = next_with_changes(&mut source).await;
    assert_eq!(tx.changes.len(), 1);
    assert_eq!(
        upsert_row(&tx, "c2"),
        row(&[(EMAIL_COLUMN, json!("lise@example.org"))]),
        "only the e-mail column: the contact's own row did not change"
    );

    db.query("UPDATE email_addresses SET email_address = 'm.curie@example.org' WHERE id = 'ea-1'")?;
    let tx = next_with_changes(&mut source).await;
    assert_eq!(upsert_row(&tx, "c1")[EMAIL_COLUMN], "m.curie@example.org");

    // A lead's address is not a contact's; a deleted relation clears it.
    add_email(&db, 3, "c1", "Leads", "lead@example.org")?;
    db.query("UPDATE email_addr_bean_rel SET deleted = 1 WHERE id = 'rel-2'")?;
    let tx = next_with_changes(&mut source).await;
    assert_eq!(tx.changes.len(), 1, "the lead's address changed no contact");
    assert_eq!(upsert_row(&tx, "c2")[EMAIL_COLUMN], Value::Null);

    // A contact's own change carries its current primary address.
    db.query("UPDATE contacts SET first_name = 'Marie' WHERE id = 'c1'")?;
    let tx = next_with_changes(&mut source).await;
    let c1 = upsert_row(&tx, "c1");
    assert_eq!(c1["first_name"], "Marie");
    assert_eq!(c1[EMAIL_COLUMN], "m.curie@example.org");
    Ok(())
}

/// Hostile text: quotes, backslashes, backticks, 4-byte characters.
const HOSTILE: &str = "O'Brien \"Q\" \\n `x`; DROP 😀 𝔘 %_/";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_back_is_captured_as_own_write_and_reads_the_same_everywhere() -> anyhow::Result<()> {
    let db = suitecrm()?;
    db.query(
        "INSERT INTO contacts (id, first_name, last_name, deleted) VALUES ('old', 'Old', 'Row', 0)",
    )?;
    let config = contacts_config(&db);
    let mut source = config.open_source(None).await?;
    let load = next(&mut source).await?;
    let loaded_old = upsert_row(&load, "old");
    let mut sink = config.open_sink().await?;
    assert_eq!(sink.fetch("old").await?, Some(loaded_old), "load == fetch");
    assert_eq!(sink.fetch("nobody").await?, None);

    let hostile_key = "k 'q' %/ü😀";
    let long_ok = "é".repeat(100);
    let writes = vec![
        Write {
            record_id: None,
            op: WriteOp::Upsert(row(&[
                ("first_name", json!("Grace")),
                ("last_name", json!("Hopper")),
                ("birthdate", json!("1906-12-09")),
                (EMAIL_COLUMN, json!("grace@example.org")),
            ])),
        },
        Write {
            record_id: Some("old".into()),
            op: WriteOp::Upsert(row(&[("first_name", json!("x".repeat(101)))])),
        },
        Write {
            record_id: Some(hostile_key.into()),
            op: WriteOp::Upsert(row(&[
                ("first_name", json!(HOSTILE)),
                ("last_name", json!(long_ok)),
                ("title", Value::Null),
                (EMAIL_COLUMN, json!("o'brien+x@example.org")),
            ])),
        },
        Write {
            record_id: Some("old".into()),
            op: WriteOp::Upsert(row(&[("no_such_column", json!(1))])),
        },
        Write {
            record_id: Some("old".into()),
            op: WriteOp::Retire,
        },
    ];
    let results = sink.apply(&writes).await?;
    assert_eq!(results.len(), 5);
    let inserted: Applied = results[0].clone()?;
    assert_eq!(inserted.record_id.len(), 36, "a new UUID key");
    let image = inserted.image.clone().expect("image");
    assert_eq!(image["first_name"], "Grace");
    assert_eq!(image[EMAIL_COLUMN], "grace@example.org");
    assert!(
        image["date_modified"].is_string(),
        "the sink sets date_modified"
    );
    match &results[1] {
        Err(ConnectorError::Record { record_id, reason }) => {
            assert_eq!(record_id, "old");
            assert!(
                reason.contains("first_name") && !reason.contains("xxx"),
                "{reason}"
            );
        }
        other => panic!("expected a Record error, got {other:?}"),
    }
    let hostile: Applied = results[2].clone()?;
    assert_eq!(hostile.record_id, hostile_key);
    let himage = hostile.image.clone().expect("image");
    assert_eq!(himage["first_name"], HOSTILE);
    assert_eq!(himage["last_name"], json!("é".repeat(100)));
    assert_eq!(himage[EMAIL_COLUMN], "o'brien+x@example.org");
    assert!(
        matches!(&results[3], Err(ConnectorError::Record { reason, .. }) if reason.contains("no_such_column"))
    );
    assert_eq!(results[4].clone()?.image, None);

    // Images are what fetch reads afterwards.
    assert_eq!(sink.fetch(&inserted.record_id).await?, Some(image.clone()));
    assert_eq!(sink.fetch(hostile_key).await?, Some(himage.clone()));
    assert_eq!(
        db.query("SELECT deleted, first_name FROM contacts WHERE id = 'old'")?,
        "1\tOld",
        "archived, and the refused write rolled back alone"
    );
    assert_eq!(
        db.query(&format!(
            "SELECT email_address_caps FROM email_addresses e JOIN email_addr_bean_rel r \
             ON r.email_address_id = e.id WHERE r.bean_id = {}",
            sql_text(&inserted.record_id)
        ))?,
        "GRACE@EXAMPLE.ORG"
    );

    // The batch comes back as one transaction marked as the connector's own.
    let own = next_with_changes(&mut source).await;
    assert!(own.own_write, "skip_replication arrives as own_write");
    let ids: BTreeSet<&str> = own.changes.iter().map(|c| c.record_id.as_str()).collect();
    assert!(
        ids.contains(inserted.record_id.as_str())
            && ids.contains(hostile_key)
            && ids.contains("old")
    );
    let captured = upsert_row(&own, hostile_key);
    for (column, value) in &captured {
        assert_eq!(
            himage.get(column),
            Some(value),
            "capture == image for {column}"
        );
    }

    // The same row changed by someone else: captured (not own), and the
    // capture equals fetch, e-mail included.
    db.query(&format!(
        "UPDATE contacts SET title = 'Rear Admiral' WHERE id = {}",
        sql_text(hostile_key)
    ))?;
    let theirs = loop {
        let tx = next_with_changes(&mut source).await;
        if !tx.own_write {
            break tx;
        }
    };
    let captured = upsert_row(&theirs, hostile_key);
    assert_eq!(
        Some(captured),
        sink.fetch(hostile_key).await?,
        "capture == fetch"
    );
    Ok(())
}

/// The server's count of `INSERT` statements so far.
fn inserts_run(db: &MariaDb) -> anyhow::Result<u64> {
    let out = db.query("SHOW GLOBAL STATUS LIKE 'Com_insert'")?;
    Ok(out.split_whitespace().nth(1).unwrap_or("0").parse()?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_upserts_takes_few_statements_and_a_refused_row_still_fails_alone(
) -> anyhow::Result<()> {
    let db = suitecrm()?;
    db.query(
        "INSERT INTO contacts (id, first_name, last_name, deleted) VALUES \
         ('a', 'Ann', 'Old', 0), ('b', 'Bo', 'Old', 0)",
    )?;
    let config = contacts_config(&db);
    let mut sink = config.open_sink().await?;
    // Ids that collide in case and hurt in SQL, new and existing rows
    // mixed, an e-mail set, changed and left as it is.
    let mut writes: Vec<Write> = (0..300)
        .map(|i| Write {
            record_id: (i % 3 != 0).then(|| format!("n{i} 'q'%_😀")),
            op: WriteOp::Upsert(row(&[
                ("first_name", json!(format!("Zoë{i}"))),
                ("last_name", json!(HOSTILE)),
                (EMAIL_COLUMN, json!(format!("n{i}@example.org"))),
            ])),
        })
        .collect();
    writes.push(Write {
        record_id: Some("a".into()),
        op: WriteOp::Upsert(row(&[
            ("last_name", json!("New")),
            (EMAIL_COLUMN, json!("ann@example.org")),
        ])),
    });
    writes.push(Write {
        record_id: Some("b".into()),
        op: WriteOp::Upsert(row(&[("title", json!("Dr"))])),
    });
    let before = inserts_run(&db)?;
    let results = sink.apply(&writes).await?;
    let inserts = inserts_run(&db)? - before;
    assert!(
        inserts <= 10,
        "300 new rows with e-mails took {inserts} INSERT statements"
    );
    assert_eq!(results.len(), writes.len());
    for (write, result) in writes.iter().zip(&results) {
        let applied = result.clone()?;
        if let Some(id) = &write.record_id {
            assert_eq!(&applied.record_id, id);
        }
        let image = applied.image.clone().expect("image");
        assert_eq!(
            sink.fetch(&applied.record_id).await?,
            Some(image.clone()),
            "image == fetch for {}",
            applied.record_id
        );
        let WriteOp::Upsert(sent) = &write.op else {
            unreachable!()
        };
        for (column, value) in sent {
            assert_eq!(
                image.get(column),
                Some(value),
                "{column} of {}",
                applied.record_id
            );
        }
    }
    assert_eq!(
        db.query(
            "SELECT first_name, last_name, title FROM contacts WHERE id IN ('a', 'b') ORDER BY id"
        )?,
        "Ann\tNew\tNULL\nBo\tOld\tDr"
    );

    // One refused row in a batch: the others are applied, it alone fails.
    let mixed = vec![
        Write {
            record_id: Some("a".into()),
            op: WriteOp::Upsert(row(&[("first_name", json!("Anna"))])),
        },
        Write {
            record_id: Some("b".into()),
            op: WriteOp::Upsert(row(&[("first_name", json!("x".repeat(101)))])),
        },
        Write {
            record_id: Some("c".into()),
            op: WriteOp::Upsert(row(&[("first_name", json!("Cy"))])),
        },
    ];
    let results = sink.apply(&mixed).await?;
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    assert!(
        matches!(&results[1], Err(ConnectorError::Record { record_id, reason })
            if record_id == "b" && reason.contains("first_name") && !reason.contains("xxx")),
        "{:?}",
        results[1]
    );
    assert_eq!(
        db.query("SELECT id, first_name FROM contacts WHERE id IN ('a', 'b', 'c') ORDER BY id")?,
        "a\tAnna\nb\tBo\nc\tCy"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_column_type_reads_the_same_from_load_binlog_and_fetch() -> anyhow::Result<()> {
    let db = MariaDb::start()?;
    db.query(
        "CREATE TABLE kinds (id int AUTO_INCREMENT PRIMARY KEY, flag tinyint(1), \
         big bigint unsigned, amount decimal(10,2), ratio double, f float, d date, \
         dt datetime(6), ts timestamp(3) NULL, tm time, yr year, \
         en enum('a','b c','it''s'), st set('x','y','z'), txt text, vc varchar(20), \
         bin blob) DEFAULT CHARSET=utf8mb4",
    )?;
    let values = "(1, 18446744073709551615, -12.50, 0.1, 1.5, '2024-02-29', \
                  '2024-02-29 23:59:58.000001', '2024-03-01 10:00:05.250', '-838:59:59', 2024, \
                  'it''s', 'x,z', '😀\\n\\'\"', NULL, x'00ff')";
    db.query(&format!(
        "INSERT INTO kinds (flag, big, amount, ratio, f, d, dt, ts, tm, yr, en, st, txt, vc, bin) \
         VALUES {values}, (0, 0, 0, -1e300, 0, '1000-01-01', '1000-01-01 00:00:00', NULL, \
         '00:00:00', 0, 'a', '', '', 'v', NULL)"
    ))?;
    let config = MysqlConfig {
        url: Some(db.url()),
        url_env: None,
        table: "kinds".into(),
        key: "id".into(),
        server_id: REPLICA_ID,
        archive_column: None,
        modified_column: None,
        suitecrm_email: false,
        load_batch: 1000,
    };
    let mut source = config.open_source(None).await?;
    let mut sink = config.open_sink().await?;
    let load = next(&mut source).await?;
    assert_eq!(load.changes.len(), 2);
    for id in ["1", "2"] {
        assert_eq!(
            Some(upsert_row(&load, id)),
            sink.fetch(id).await?,
            "load == fetch for {id}"
        );
    }
    let one = upsert_row(&load, "1");
    assert_eq!(one["flag"], 1);
    assert_eq!(one["big"], json!(18446744073709551615u64));
    assert_eq!(one["amount"], "-12.50");
    assert_eq!(one["d"], "2024-02-29");
    assert_eq!(one["dt"], "2024-02-29T23:59:58.000001");
    assert_eq!(one["ts"], "2024-03-01T10:00:05.250000Z");
    assert_eq!(one["tm"], "-838:59:59");
    assert_eq!(one["yr"], 2024);
    assert_eq!(one["en"], "it's");
    assert_eq!(one["st"], "x,z");
    assert_eq!(one["txt"], "😀\n'\"");
    assert!(!one.contains_key("bin"), "binary columns are not read");

    // The same values through the binary log.
    db.query(&format!(
        "INSERT INTO kinds (flag, big, amount, ratio, f, d, dt, ts, tm, yr, en, st, txt, vc, bin) \
         VALUES {values}; UPDATE kinds SET vc = 'changed' WHERE id = 2"
    ))?;
    let inserted = next_with_changes(&mut source).await;
    let three = upsert_row(&inserted, "3");
    assert_eq!(
        Some(three.clone()),
        sink.fetch("3").await?,
        "binlog == fetch"
    );
    let mut expected = one.clone();
    expected.insert("id".into(), json!(3));
    assert_eq!(three, expected);
    let updated = next_with_changes(&mut source).await;
    assert_eq!(Some(upsert_row(&updated, "2")), sink.fetch("2").await?);

    // Insert without a key on an auto-increment key: the server's next id.
    let results = sink
        .apply(&[Write {
            record_id: None,
            op: WriteOp::Upsert(row(&[
                ("en", json!("b c")),
                ("ts", json!("2024-03-01T10:00:05Z")),
            ])),
        }])
        .await?;
    let applied = results[0].clone()?;
    assert_eq!(applied.record_id, "4");
    let image = applied.image.expect("image");
    assert_eq!(image["en"], "b c");
    assert_eq!(image["ts"], "2024-03-01T10:00:05Z");
    let own = next_with_changes(&mut source).await;
    assert!(own.own_write);
    assert_eq!(upsert_row(&own, "4"), image, "capture == image");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_errors_are_fatal_and_a_stopped_server_is_unavailable() -> anyhow::Result<()> {
    let mut db = suitecrm()?;
    let good = contacts_config(&db);

    let mut wrong = good.clone();
    wrong.table = "no_such_table".into();
    let e = wrong.open_source(None).await.err().expect("an error");
    assert!(
        matches!(&e, ConnectorError::Fatal(m) if m.contains("no_such_table")),
        "{e:?}"
    );
    let mut wrong = good.clone();
    wrong.server_id = mdhub_tests::mariadb::SERVER_ID;
    let e = wrong.open_sink().await.err().expect("an error");
    assert!(
        matches!(&e, ConnectorError::Fatal(m) if m.contains("server_id")),
        "{e:?}"
    );
    db.query("SET GLOBAL binlog_row_metadata = 'MINIMAL'")?;
    let e = good.open_source(None).await.err().expect("an error");
    assert!(
        matches!(&e, ConnectorError::Fatal(m) if m.contains("binlog_row_metadata")),
        "{e:?}"
    );
    db.query("SET GLOBAL binlog_row_metadata = 'FULL'")?;
    let e = good
        .open_source(Some(json!({"file": "binlog.999999", "pos": 4})))
        .await?
        .next()
        .await
        .expect_err("an error");
    assert!(
        matches!(&e, ConnectorError::Fatal(m) if m.contains("binlog.999999")),
        "{e:?}"
    );

    let mut source = good.open_source(None).await?;
    next(&mut source).await?;
    let mut sink = good.open_sink().await?;
    db.stop()?;
    assert!(matches!(
        next(&mut source).await,
        Err(ConnectorError::Unavailable(_))
    ));
    let write = Write {
        record_id: Some("x".into()),
        op: WriteOp::Retire,
    };
    assert!(matches!(
        sink.apply(&[write]).await,
        Err(ConnectorError::Unavailable(_))
    ));
    assert!(matches!(
        sink.fetch("x").await,
        Err(ConnectorError::Unavailable(_))
    ));
    assert!(matches!(
        good.open_source(None).await,
        Err(ConnectorError::Unavailable(_))
    ));
    Ok(())
}

#[test]
fn the_suitecrm_preset_maps_contacts_to_the_customer_model() -> anyhow::Result<()> {
    let model = mdhub_schema::Model::default_customer();
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../connectors/presets/suitecrm_contacts.toml");
    let mapping = mdhub_connectors::mapping::Mapping::from_file(&path, &model)?;
    let contact = row(&[
        ("first_name", json!("Ada")),
        ("last_name", json!("Lovelace")),
        ("title", json!("Countess")),
        ("phone_work", json!("+44 20 7946 0000")),
        ("primary_address_country", json!("United Kingdom")),
        ("primary_address_postalcode", json!("sw1a 1aa")),
        ("birthdate", json!("1815-12-10")),
        (EMAIL_COLUMN, json!("Ada@Example.org")),
    ]);
    let fields = mapping
        .to_canonical(&contact)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert_eq!(fields["given_name"], "Ada");
    assert_eq!(fields["family_name"], "Lovelace");
    assert_eq!(fields["job_title"], "Countess");
    assert_eq!(fields["email"], "ada@example.org");
    assert_eq!(fields["country"], "GB");
    assert_eq!(fields["birth_date"], "1815-12-10");
    let back = mapping
        .to_system(&fields)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert_eq!(back[EMAIL_COLUMN], "ada@example.org");
    assert_eq!(back["first_name"], "Ada");
    Ok(())
}
