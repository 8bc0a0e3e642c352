//! `mdhub connector run` as a process, against a real PostgreSQL holding
//! Odoo's `res_partner` (preset `odoo_res_partner`), a real nats-server and
//! the hub in this process: killed with SIGKILL in the middle of a stream
//! of transactions it catches up with no gap and no duplicate; a database
//! away for 30 s is retried with backoff, reported on `/metrics`, and
//! caught up; a bad config stops it at start with every problem listed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mdhub_connectors::publish::{OutMessage, Publisher};
use mdhub_hub::nats_bus::IN_STREAM;
use mdhub_schema::{ChangeEvent, Op, SCHEMA_VERSION};
use mdhub_tests::connector_process::ConnectorProcess;
use mdhub_tests::hub_runner::{config, InProcessHub};
use mdhub_tests::nats::NatsServer;
use mdhub_tests::postgres::Postgres;
use mdhub_tests::streams::read_all;
use mdhub_tests::wait::wait_until;
use serde_json::{json, Value};
use tempfile::TempDir;
use time::OffsetDateTime;
use uuid::Uuid;

const ODOO_SQL: &str = include_str!("../data/odoo_res_partner.sql");

/// Deadline for one awaited state (a change reaching the hub, a metric).
const DEADLINE: Duration = Duration::from_secs(30);

/// Partners in the table before the connector starts (its initial load).
const PARTNERS: u64 = 100;

/// Transactions the writer commits while the connector runs.
const WRITES: u64 = 3_000;

/// The hub knows the Odoo system and a probe system whose one event, sent
/// last, shows that the hub has read everything before it.
const HUB_TOML: &str = "[system.odoo]\n[system.probe]\n\
     [survivorship]\nsource_priority = []\n[survivorship.fields]\ncity = \"most_recent\"\n";

/// Everything a test runs against; the connector is started by the test.
struct Bench {
    pg: Postgres,
    nats: NatsServer,
    hub: InProcessHub,
    dir: TempDir,
}

impl Bench {
    /// PostgreSQL with the Odoo tables and `partners` partners with
    /// distinct names and e-mails (md5 texts: nothing for the matcher to
    /// join), NATS and the hub.
    async fn start(partners: u64) -> Bench {
        let pg = Postgres::start().expect("start PostgreSQL");
        pg.psql(ODOO_SQL).expect("create the Odoo tables");
        pg.psql(&format!(
            "INSERT INTO res_partner (id, name, email, city, write_date) \
             SELECT i, md5('p' || i), md5('p' || i) || '@example.com', 'start', \
                    now() AT TIME ZONE 'utc' \
             FROM generate_series(1, {partners}) i; \
             SELECT setval('res_partner_id_seq', {partners});"
        ))
        .expect("seed partners");
        let nats = NatsServer::start().expect("start NATS");
        let dir = tempfile::tempdir().expect("temp dir");
        let hub = InProcessHub::start(
            config(HUB_TOML, nats.client_url(), &dir.path().join("hub")).expect("hub config"),
        )
        .await
        .expect("start the hub");
        Bench { pg, nats, hub, dir }
    }

    /// The connector's config for this database (`metrics_listen` is the
    /// harness's).
    fn connector_toml(&self, write_back: bool) -> String {
        format!(
            "system = \"odoo\"\nmapping = \"odoo_res_partner\"\nstate_dir = \"state\"\n\
             write_back = {write_back}\n\
             [postgres]\nurl = \"{}\"\ntable = \"res_partner\"\n\
             archive_column = \"active\"\nmodified_column = \"write_date\"\n",
            self.pg.url()
        )
    }

    fn start_connector(&self, write_back: bool) -> ConnectorProcess {
        ConnectorProcess::start(
            &self.connector_toml(write_back),
            self.nats.client_url(),
            self.dir.path(),
        )
        .expect("start mdhub connector run")
    }

    fn golden_of(&self, system: &str, record_id: &str) -> Option<Uuid> {
        self.hub.golden_of(system, record_id)
    }

    /// The golden city of a partner, once the hub has linked it.
    fn golden_city(&self, record_id: &str) -> Option<Value> {
        let id = self.golden_of("odoo", record_id)?;
        let hub = self.hub.hub.read().unwrap();
        hub.state().record(id).unwrap()?.values.get("city").cloned()
    }

    async fn wait_city(&self, record_id: &str, city: &str, connector: &ConnectorProcess) {
        wait_until(
            &format!("partner {record_id} to reach the hub with city {city}"),
            Duration::from_secs(60),
            || async { self.golden_city(record_id) == Some(json!(city)) },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\n--- connector log ---\n{}", connector.log_tail()));
    }

    /// Publishes one event of the probe system and waits until the hub has
    /// linked it: the hub reads MDHUB_IN in order, so everything published
    /// before it has been read (and logged, or dropped as a duplicate).
    async fn probe(&self) {
        let client = self.nats.connect().await.expect("connect");
        let event = ChangeEvent {
            schema_version: SCHEMA_VERSION,
            event_id: Uuid::now_v7(),
            system: "probe".into(),
            entity: "customer".into(),
            record_id: "probe-1".into(),
            op: Op::Upsert,
            fields: [("email".to_string(), json!("probe@example.org"))].into(),
            observed_at: OffsetDateTime::now_utc(),
            base: None,
            caused_by: None,
        };
        Publisher::for_server(client)
            .publish_all(vec![OutMessage::new(
                "mdhub.in.probe.customer",
                serde_json::to_vec(&event).expect("serializes"),
            )])
            .await
            .expect("publish the probe");
        wait_until("the hub to read the probe", DEADLINE, || async {
            self.golden_of("probe", "probe-1").is_some()
        })
        .await
        .expect("probe");
    }

    /// `(id, city)` of every partner, as PostgreSQL holds them now.
    fn partners(&self) -> Vec<(String, String)> {
        self.pg
            .psql("SELECT id, city FROM res_partner ORDER BY id")
            .expect("read partners")
            .lines()
            .filter_map(|l| l.split_once('|'))
            .map(|(id, city)| (id.to_string(), city.to_string()))
            .collect()
    }
}

/// The writer: `WRITES` transactions, each one change of `res_partner`
/// (every tenth an insert, the others an update of a partner's city to a
/// numbered value) plus its number in `writer_progress`, a little apart so
/// that the connector is killed while they are still coming.
fn writer_sql() -> String {
    format!(
        "DO $$ BEGIN \
           FOR i IN 1..{WRITES} LOOP \
             IF i % 10 = 0 THEN \
               INSERT INTO res_partner (name, email, city, write_date) \
               VALUES (md5('n' || i), md5('n' || i) || '@example.com', 'ins-' || i, \
                       clock_timestamp() AT TIME ZONE 'utc'); \
             ELSE \
               UPDATE res_partner SET city = 'c-' || i, \
                      write_date = clock_timestamp() AT TIME ZONE 'utc' \
               WHERE id = (i % {PARTNERS}) + 1; \
             END IF; \
             UPDATE writer_progress SET n = i; \
             COMMIT; \
             PERFORM pg_sleep(0.002); \
           END LOOP; \
         END $$;"
    )
}

fn progress(pg: &Postgres) -> u64 {
    pg.psql("SELECT n FROM writer_progress")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connector_killed_mid_stream_catches_up_with_no_gap_and_no_duplicate() {
    let bench = Bench::start(PARTNERS).await;
    bench
        .pg
        .psql(
            "CREATE TABLE writer_progress (n int NOT NULL); INSERT INTO writer_progress VALUES (0)",
        )
        .expect("progress table");
    let mut connector = bench.start_connector(false);
    wait_until("the initial load to reach the hub", DEADLINE, || async {
        bench.hub.last_seq() >= PARTNERS
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", connector.log_tail()));

    let pg = Arc::new(bench.pg);
    let writer = tokio::task::spawn_blocking({
        let pg = pg.clone();
        move || pg.psql(&writer_sql())
    });

    // Killed once a fifth of the writes are in the hub's log.
    wait_until(
        "a fifth of the writes to reach the hub",
        DEADLINE,
        || async { bench.hub.last_seq() >= PARTNERS + WRITES / 5 },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", connector.log_tail()));
    connector.kill9().expect("kill -9");
    let at_kill = progress(&pg);
    let logged_at_kill = bench.hub.last_seq() - PARTNERS;
    // Mid-stream: a good part of the writes is not in the hub yet (still
    // to be written, or written and not yet captured).
    assert!(
        logged_at_kill + 500 < WRITES,
        "{logged_at_kill} of {WRITES} writes were logged when the connector was killed"
    );
    // Transactions committed while the connector is down (unless the
    // writer, faster than the connector, was done already).
    let resume_at = (at_kill + 200).min(WRITES);
    wait_until(
        "the writer to go on while the connector is down",
        DEADLINE,
        || async { progress(&pg) >= resume_at },
    )
    .await
    .expect("writer progress");
    connector.restart().expect("restart");
    writer
        .await
        .expect("writer task")
        .expect("the writer's transactions");
    let pg = Arc::into_inner(pg).expect("the writer is done with PostgreSQL");
    let bench = Bench { pg, ..bench };

    // Catching up a backlog of a few thousand transactions on a loaded
    // machine takes a while: one deadline for all of it.
    wait_until(
        "the hub to log every write",
        Duration::from_secs(120),
        || async { bench.hub.last_seq() >= PARTNERS + WRITES },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", connector.log_tail()));
    // No gap: every partner's golden city is the last one written.
    let partners = bench.partners();
    assert_eq!(partners.len() as u64, PARTNERS + WRITES / 10);
    for (id, city) in &partners {
        bench.wait_city(id, city, &connector).await;
    }
    assert_eq!(
        connector
            .metric("mdhub_connector_load_done")
            .expect("metrics"),
        1.0,
        "the restarted connector resumed from its cursor"
    );

    // No duplicate: once the hub has read everything on MDHUB_IN, its log
    // holds one entry per source change (load rows, written transactions)
    // and the probe. An event read again after the restart with another id
    // would be one more entry.
    bench.probe().await;
    let js = async_nats::jetstream::new(bench.nats.connect().await.expect("connect"));
    let published = read_all(&js, IN_STREAM, "mdhub.in.odoo.customer")
        .await
        .expect("read MDHUB_IN");
    let ids: BTreeSet<Uuid> = published
        .iter()
        .filter_map(|m| serde_json::from_slice::<ChangeEvent>(&m.payload).ok())
        .map(|e| e.event_id)
        .collect();
    eprintln!(
        "killed after {logged_at_kill} of {WRITES} writes were logged (writer at {at_kill}); \
         {} events on MDHUB_IN, {} distinct ids",
        published.len(),
        ids.len()
    );
    assert_eq!(ids.len() as u64, PARTNERS + WRITES, "distinct event ids");
    assert_eq!(
        bench.hub.last_seq(),
        PARTNERS + WRITES + 1,
        "hub log entries (load rows + writes + the probe)"
    );
    connector.stop().expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_stopped_for_30_seconds_is_retried_with_backoff_and_caught_up() {
    const OUTAGE: Duration = Duration::from_secs(30);
    let mut bench = Bench::start(3).await;
    let mut connector = bench.start_connector(true);
    bench
        .pg
        .psql("UPDATE res_partner SET city = 'before' WHERE id = 1")
        .expect("edit");
    bench.wait_city("1", "before", &connector).await;
    assert_eq!(connector.metric("mdhub_connector_source_up").unwrap(), 1.0);

    bench.pg.stop_immediate().expect("stop PostgreSQL");
    let down = Instant::now();
    wait_until("source_up to drop to 0", DEADLINE, || async {
        connector.metric("mdhub_connector_source_up").ok() == Some(0.0)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", connector.log_tail()));
    let errors_first = connector.metric("mdhub_connector_errors_total").unwrap();
    assert!(errors_first >= 1.0, "errors_total {errors_first}");
    // Held down for the whole outage: the process stays up, says it is
    // retrying, and keeps counting failed tries.
    let mut errors_seen = vec![errors_first];
    while down.elapsed() < OUTAGE {
        assert!(
            connector.is_running(),
            "the connector exited while PostgreSQL was down:\n{}",
            connector.log_tail()
        );
        let m = connector
            .metrics()
            .expect("/metrics while the database is down");
        let up = m
            .iter()
            .find(|(k, _)| k.starts_with("mdhub_connector_source_up"));
        assert_eq!(up.map(|(_, v)| *v), Some(0.0), "source_up while down");
        errors_seen.push(connector.metric("mdhub_connector_errors_total").unwrap());
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let errors_last = *errors_seen.last().unwrap();
    assert!(
        errors_last > errors_first,
        "errors_total did not grow while the database was down: {errors_seen:?}"
    );
    // Backoff, not a busy loop: a few dozen tries at most in 30 s.
    assert!(errors_last < 60.0, "errors_total {errors_last}: no backoff");
    let log = connector.log();
    assert!(
        log.contains("lost the system") && log.contains("retrying with backoff"),
        "the log does not say it is retrying:\n{}",
        connector.log_tail()
    );

    bench.pg.start_again().expect("start PostgreSQL again");
    bench
        .pg
        .psql(
            "UPDATE res_partner SET city = 'after' WHERE id = 2; \
               INSERT INTO res_partner (id, name, email, city) \
               VALUES (50, md5('late'), 'late@example.com', 'late')",
        )
        .expect("edits after the outage");
    bench.wait_city("2", "after", &connector).await;
    bench.wait_city("50", "late", &connector).await;
    wait_until("source_up to return to 1", DEADLINE, || async {
        connector.metric("mdhub_connector_source_up").ok() == Some(1.0)
    })
    .await
    .expect("source_up");
    connector.stop().expect("clean stop");
    eprintln!(
        "outage {:.1?}; errors_total {errors_seen:?}",
        down.elapsed()
    );
}

#[tokio::test]
async fn a_bad_config_fails_at_start_with_every_problem() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Nobody listens there: a run that got past the config would wait for
    // NATS with backoff and never exit.
    let nats = "nats://127.0.0.1:1";
    let out = ConnectorProcess::run_to_exit(
        "system = \"Odoo EU\"\nmapping = \"no_such_preset\"\nstate_dir = \"state\"\n\
         max_write_batch = 0\n\
         [postgres]\nurl = \"postgres://odoo:s3cret-pw@127.0.0.1:5432/odoo\"\ntable = \"res_partner\"\n",
        nats,
        dir.path(),
    )
    .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "exit status {}: {stderr}",
        out.status
    );
    let mut missing = BTreeMap::new();
    for (key, expected) in [
        ("system", "system: \"Odoo EU\""),
        (
            "max_write_batch",
            "max_write_batch: must be between 1 and 10000",
        ),
        ("mapping", "mapping: "),
        ("preset names", "odoo_res_partner"),
        ("postgres url", "postgres: "),
        ("count", "4 problem(s)"),
    ] {
        if !stderr.contains(expected) {
            missing.insert(key, expected);
        }
    }
    assert!(missing.is_empty(), "missing {missing:?} in:\n{stderr}");
    assert!(
        !stderr.contains("s3cret-pw"),
        "the password was printed:\n{stderr}"
    );
    assert!(
        !dir.path().join("state").exists(),
        "a refused config created its state directory"
    );
}
