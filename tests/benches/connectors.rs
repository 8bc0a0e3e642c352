//! Connector benchmarks: propagation latency from a committed change in
//! PostgreSQL (Odoo `res_partner`) to the same value committed in MariaDB
//! (SuiteCRM `contacts`), and the initial load of a table through the hub
//! into the other system, each against a same-run baseline.
//!
//! Run with `cargo bench -p mdhub-tests --bench connectors`. Everything is
//! real: nats-server (fsync on every write), the hub (`InProcessHub`),
//! PostgreSQL and MariaDB from the harness, and both connectors through
//! `runner::run` in this process, configured from connector files as
//! `mdhub connector run` reads them. The Odoo side is system `erp`
//! (preset `odoo_res_partner`), the CRM side system `crm` (preset
//! `suitecrm_contacts`, `suitecrm_email = true`, `receive_all = true` in
//! the hub so that it inserts every customer it does not hold yet).
//!
//! Parameters from the environment: `MDHUB_BENCH_CUSTOMERS` (customers of
//! the latency phase, default 1000), `MDHUB_BENCH_RATES` (changes per
//! second, comma-separated, default `100,1000`), `MDHUB_BENCH_SECONDS`
//! (length of each rate, default 10), `MDHUB_BENCH_FLOOR` (floor samples,
//! default 500), `MDHUB_BENCH_LOAD_ROWS` (rows of the load phase, default
//! 20000; `MDHUB_SLOW=1` makes it 1,000,000). Progress goes to stderr, the
//! figures to stdout. Targets are printed as met or not, never asserted.
//!
//! Phases:
//! 1. latency: customers seeded in PostgreSQL are loaded and inserted into
//!    MariaDB; then, at each rate, one customer's city is set to a value
//!    unique to the change (round robin over the customers) by a few writer
//!    connections on a fixed schedule; the commit time is taken when the
//!    commit returns, the arrival time when a poller (every
//!    [`POLL_EVERY`]) first reads the value in MariaDB. A value overwritten
//!    in MariaDB by a later change of the same customer before the poller
//!    saw it counts as superseded, one that never arrives as missing.
//!    Floor: the same update committed in PostgreSQL plus one committed
//!    directly in MariaDB from here, one after the other, no hub (on copies
//!    of the tables that no connector reads).
//! 2. initial load: N generated customers (distinct names, e-mails and
//!    phones, so that none merge) in `res_partner` before the connectors
//!    start; from the start of the Odoo connector until MariaDB holds N
//!    contacts. Baseline: `COPY (SELECT * FROM res_partner) TO STDOUT` of
//!    the same table.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use futures::StreamExt;
use mdhub_connectors::config::ConnectorFile;
use mdhub_connectors::publish::Publisher;
use mdhub_connectors::runner::metrics::ConnectorMetrics;
use mdhub_connectors::runner::{RunContext, RunError};
use mdhub_tests::hub_runner::{config, InProcessHub};
use mdhub_tests::mariadb::MariaDb;
use mdhub_tests::nats::NatsServer;
use mdhub_tests::postgres::Postgres;
use mysql_async::prelude::Queryable;
use tokio_util::sync::CancellationToken;

/// The same allocator as the `mdhub` binary: the hub runs in this process.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ODOO_SQL: &str = include_str!("../data/odoo_res_partner.sql");

/// Target of the issue: p99 propagation under this at 1,000 changes/s.
const TARGET_P99: Duration = Duration::from_millis(250);
/// The rate the target is stated for.
const TARGET_RATE: u32 = 1000;
/// How often the arrival poller reads MariaDB.
const POLL_EVERY: Duration = Duration::from_millis(2);
/// PostgreSQL connections committing the changes of a rate phase.
const WRITERS: usize = 8;
/// How long changes may still arrive after the last commit of a phase.
const STRAGGLER_DEADLINE: Duration = Duration::from_secs(60);
/// How long the seeded customers may take to reach MariaDB.
const SEED_DEADLINE: Duration = Duration::from_secs(600);
/// How long the load phase may take before the bench gives up.
const LOAD_DEADLINE: Duration = Duration::from_secs(6 * 3600);
/// Progress lines on stderr this often.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// The CRM connector's replica id (the harness's MariaDB is server 1).
const CRM_SERVER_ID: u32 = 4301;

fn env_usize(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .replace('_', "")
            .parse()
            .with_context(|| format!("{name}={v:?} is not a number")),
        Err(_) => Ok(default),
    }
}

fn env_rates() -> anyhow::Result<Vec<u32>> {
    match std::env::var("MDHUB_BENCH_RATES") {
        Ok(v) => v
            .split(',')
            .map(|r| {
                r.trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|r| *r > 0)
                    .with_context(|| format!("MDHUB_BENCH_RATES={v:?}: {r:?} is not a rate"))
            })
            .collect(),
        Err(_) => Ok(vec![100, 1000]),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

// ---------------------------------------------------------------------------
// Latency figures
// ---------------------------------------------------------------------------

/// Percentiles of a set of durations (nearest rank).
struct Spread {
    n: usize,
    p50: Duration,
    p95: Duration,
    p99: Duration,
    max: Duration,
}

impl Spread {
    fn of(mut v: Vec<Duration>) -> Option<Spread> {
        if v.is_empty() {
            return None;
        }
        v.sort();
        let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Some(Spread {
            n: v.len(),
            p50: rank(0.50),
            p95: rank(0.95),
            p99: rank(0.99),
            max: v[v.len() - 1],
        })
    }

    fn line(&self) -> String {
        format!(
            "p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms (n = {})",
            ms(self.p50),
            ms(self.p95),
            ms(self.p99),
            ms(self.max),
            self.n
        )
    }
}

// ---------------------------------------------------------------------------
// The systems: NATS, hub, PostgreSQL with Odoo's tables, MariaDB with
// SuiteCRM's, and the two connectors
// ---------------------------------------------------------------------------

fn hub_toml() -> String {
    "[system.erp]\nregion = \"DE\"\n\
     [system.crm]\nregion = \"DE\"\nreceive_all = true\n\
     [survivorship]\nsource_priority = [\"erp\", \"crm\"]\n"
        .to_string()
}

fn erp_toml(pg: &Postgres) -> String {
    format!(
        "system = \"erp\"\nmapping = \"odoo_res_partner\"\nstate_dir = \"erp-state\"\n\
         [postgres]\nurl = \"{}\"\ntable = \"res_partner\"\n\
         archive_column = \"active\"\nmodified_column = \"write_date\"\n",
        pg.url()
    )
}

fn crm_toml(db: &MariaDb) -> String {
    format!(
        "system = \"crm\"\nmapping = \"suitecrm_contacts\"\nstate_dir = \"crm-state\"\n\
         [mysql]\nurl = \"{}\"\ntable = \"contacts\"\nserver_id = {CRM_SERVER_ID}\n\
         archive_column = \"deleted\"\nmodified_column = \"date_modified\"\n\
         suitecrm_email = true\n",
        db.url()
    )
}

/// One connector running in a task of this process.
struct Running {
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), RunError>>,
    metrics: Arc<ConnectorMetrics>,
}

impl Running {
    /// Starts the connector a config file describes, as `mdhub connector
    /// run` would (state directory relative to `dir`).
    async fn start(nats: &NatsServer, toml: &str, dir: &Path) -> anyhow::Result<Running> {
        let checked = ConnectorFile::parse(toml, "bench connector", dir, Some(nats.url()))
            .map_err(|e| anyhow!("{e}"))?;
        let client = nats.connect().await?;
        let metrics = Arc::new(ConnectorMetrics::default());
        let shutdown = CancellationToken::new();
        let ctx = RunContext {
            system: checked.file.system.clone(),
            entity: checked.file.entity.clone(),
            mapping: checked.mapping.clone(),
            publisher: Publisher::for_server(client),
            state_dir: checked.file.state_dir.clone(),
            metrics: metrics.clone(),
            shutdown: shutdown.clone(),
            write_back: checked.file.write_back,
            max_write_batch: checked.file.max_write_batch,
        };
        let task = tokio::spawn(checked.run(ctx));
        Ok(Running {
            shutdown,
            task,
            metrics,
        })
    }

    /// Fails if the connector stopped on its own.
    fn check(&self, name: &str) -> anyhow::Result<()> {
        if self.task.is_finished() {
            bail!("the {name} connector stopped early");
        }
        Ok(())
    }

    async fn stop(self, name: &str) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.task
            .await
            .with_context(|| format!("the {name} connector's task"))?
            .with_context(|| format!("the {name} connector"))
    }
}

/// Servers and the hub; connectors are started by the phases.
struct Rig {
    nats: NatsServer,
    pg: Postgres,
    db: MariaDb,
    hub: Option<InProcessHub>,
    dir: tempfile::TempDir,
}

impl Rig {
    async fn start(label: &str) -> anyhow::Result<Rig> {
        let nats = NatsServer::start()?;
        let pg = Postgres::start()?;
        pg.psql(ODOO_SQL).context("creating Odoo's tables")?;
        let db = MariaDb::start()?;
        db.run_file(&Path::new(env!("CARGO_MANIFEST_DIR")).join("data/suitecrm.sql"))
            .context("creating SuiteCRM's tables")?;
        let dir = tempfile::Builder::new()
            .prefix("mdhub-bench-connectors-")
            .tempdir()?;
        let cfg = config(&hub_toml(), nats.url(), &dir.path().join("hub-data"))?;
        let hub = InProcessHub::start(cfg).await?;
        eprintln!(
            "[{label}] nats-server {} (sync_interval: always = {}), PostgreSQL {}, MariaDB {}",
            nats.version(),
            nats.sync_always(),
            pg.url(),
            db.url()
        );
        Ok(Rig {
            nats,
            pg,
            db,
            hub: Some(hub),
            dir,
        })
    }

    async fn connector(&self, toml: &str) -> anyhow::Result<Running> {
        Running::start(&self.nats, toml, self.dir.path()).await
    }

    async fn pg_client(&self) -> anyhow::Result<tokio_postgres::Client> {
        let (client, conn) = tokio_postgres::connect(&self.pg.url(), tokio_postgres::NoTls)
            .await
            .context("connecting to PostgreSQL")?;
        tokio::spawn(conn);
        Ok(client)
    }

    async fn my_conn(&self) -> anyhow::Result<mysql_async::Conn> {
        let opts = mysql_async::Opts::from_url(&self.db.url())?;
        mysql_async::Conn::new(opts)
            .await
            .context("connecting to MariaDB")
    }

    fn hub_seq(&self) -> u64 {
        self.hub.as_ref().map_or(0, InProcessHub::last_seq)
    }

    /// Stops the hub and the servers, PostgreSQL without waiting on
    /// replication clients (the connectors are stopped first anyway).
    async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(hub) = self.hub.take() {
            hub.stop().await?;
        }
        self.pg.stop_immediate()?;
        self.db.stop()?;
        drop(self.nats);
        Ok(())
    }
}

/// Inserts `n` customers after the ones already there: distinct names,
/// e-mails and phones (nothing for the hub to merge), German addresses.
async fn seed(pg: &tokio_postgres::Client, from: i64, n: i64) -> anyhow::Result<()> {
    pg.execute(
        "INSERT INTO res_partner (create_date, write_date, name, complete_name, is_company, \
             active, type, street, zip, city, country_id, email, phone, lang) \
         SELECT now() AT TIME ZONE 'utc', now() AT TIME ZONE 'utc', \
             'Kunde ' || substr(md5(g::text), 1, 12), 'Kunde ' || substr(md5(g::text), 1, 12), \
             false, true, 'contact', 'Hauptstraße ' || (g % 200 + 1), \
             lpad((10000 + g % 89999)::text, 5, '0'), 'Berlin', 57, \
             'kunde' || g || '@bench.example', '+4930' || lpad(g::text, 8, '0'), 'de_DE' \
         FROM generate_series($1::int8, $2::int8) AS g",
        &[&(from + 1), &(from + n)],
    )
    .await
    .context("seeding res_partner")?;
    Ok(())
}

async fn contacts(db: &mut mysql_async::Conn) -> anyhow::Result<u64> {
    let n: Option<u64> = db
        .query_first("SELECT COUNT(*) FROM contacts WHERE deleted = 0")
        .await?;
    Ok(n.unwrap_or(0))
}

/// Waits until MariaDB holds `n` contacts, printing progress; returns
/// when that was seen.
async fn wait_contacts(
    rig: &Rig,
    label: &str,
    n: u64,
    start: Instant,
    deadline: Duration,
    connectors: &[(&str, &Running)],
) -> anyhow::Result<Instant> {
    let mut db = rig.my_conn().await?;
    let mut last_print = Instant::now();
    loop {
        let have = contacts(&mut db).await?;
        if have >= n {
            return Ok(Instant::now());
        }
        for (name, c) in connectors {
            c.check(name)?;
        }
        if start.elapsed() > deadline {
            bail!("[{label}] MariaDB holds {have} of {n} contacts after {deadline:?}");
        }
        if last_print.elapsed() >= PROGRESS_EVERY {
            last_print = Instant::now();
            let m = |name: &str| {
                connectors
                    .iter()
                    .find(|(c, _)| *c == name)
                    .map(|(_, r)| r.metrics.clone())
            };
            let erp_events = m("erp").map_or(0, |m| ConnectorMetrics::get(&m.events_captured));
            let crm_applied = m("crm").map_or(0, |m| ConnectorMetrics::get(&m.updates_applied));
            eprintln!(
                "[{label}] {:>7.1} s: {have} of {n} contacts in MariaDB; erp captured {erp_events}, hub logged {}, crm applied {crm_applied}",
                start.elapsed().as_secs_f64(),
                rig.hub_seq(),
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------
// 1. Propagation latency
// ---------------------------------------------------------------------------

/// What became of the changes of one rate phase.
struct RateFigures {
    rate: u32,
    sent: usize,
    achieved: f64,
    arrived: usize,
    superseded: usize,
    missing: usize,
    latency: Option<Spread>,
    /// Commit -> change event on NATS, -> golden update on NATS, -> in
    /// MariaDB, for the changes seen at every stage.
    stages: [Option<Spread>; 3],
    commit: Option<Spread>,
}

/// The value change `i` of phase `tag` writes: ordered like `i`.
fn city(tag: &str, i: usize) -> String {
    format!("{tag}-{i:08}")
}

/// Shared book of one phase: commit and arrival instants per change.
struct Book {
    committed: Vec<Option<Instant>>,
    commit_took: Vec<Option<Duration>>,
    arrived: Vec<Option<Instant>>,
    superseded: Vec<bool>,
    /// First seen on NATS: the Odoo connector's change event, the hub's
    /// golden update for the CRM (the stages of the latency).
    published: Vec<Option<Instant>>,
    golden: Vec<Option<Instant>>,
}

/// Which stage a NATS subject shows.
#[derive(Clone, Copy)]
enum Stage {
    Published,
    Golden,
}

/// The change number of a payload that carries a value of phase `tag`.
fn change_in(payload: &[u8], prefix: &str, total: usize) -> Option<usize> {
    let text = std::str::from_utf8(payload).ok()?;
    let at = text.find(prefix)? + prefix.len();
    text.get(at..at + 8)?
        .parse::<usize>()
        .ok()
        .filter(|i| *i < total)
}

/// Notes when each change is first seen on `subject` (core NATS: sees the
/// messages JetStream stores on it).
async fn watch(
    client: &async_nats::Client,
    subject: &str,
    stage: Stage,
    book: Arc<Mutex<Book>>,
    tag: &str,
    total: usize,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let mut sub = client.subscribe(subject.to_string()).await?;
    let prefix = format!("{tag}-");
    Ok(tokio::spawn(async move {
        while let Some(m) = sub.next().await {
            let now = Instant::now();
            if let Some(i) = change_in(&m.payload, &prefix, total) {
                let mut b = book.lock().expect("book");
                let slot = match stage {
                    Stage::Published => &mut b.published[i],
                    Stage::Golden => &mut b.golden[i],
                };
                slot.get_or_insert(now);
            }
        }
    }))
}

async fn rate_phase(
    rig: &Rig,
    ids: &[i32],
    rate: u32,
    seconds: usize,
    connectors: &[(&str, &Running)],
) -> anyhow::Result<RateFigures> {
    let tag = format!("r{rate}");
    let total = rate as usize * seconds;
    let customers = ids.len();
    let book = Arc::new(Mutex::new(Book {
        committed: vec![None; total],
        commit_took: vec![None; total],
        arrived: vec![None; total],
        superseded: vec![false; total],
        published: vec![None; total],
        golden: vec![None; total],
    }));
    let nc = rig.nats.connect().await?;
    let watchers = [
        watch(
            &nc,
            "mdhub.in.erp.>",
            Stage::Published,
            book.clone(),
            &tag,
            total,
        )
        .await?,
        watch(
            &nc,
            "mdhub.out.crm.>",
            Stage::Golden,
            book.clone(),
            &tag,
            total,
        )
        .await?,
    ];
    nc.flush().await?;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    let start = Instant::now() + Duration::from_millis(200);

    // Writers: change i goes to writer i % WRITERS at start + i * interval
    // (late writers catch up without sleeping).
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let client = rig.pg_client().await?;
        let book = book.clone();
        let ids = ids.to_vec();
        let tag = tag.clone();
        writers.push(tokio::spawn(async move {
            let stmt = client
                .prepare(
                    "UPDATE res_partner SET city = $1, write_date = now() AT TIME ZONE 'utc' \
                     WHERE id = $2",
                )
                .await?;
            for i in (w..total).step_by(WRITERS) {
                tokio::time::sleep_until((start + interval * i as u32).into()).await;
                let before = Instant::now();
                let n = client
                    .execute(&stmt, &[&city(&tag, i), &ids[i % ids.len()]])
                    .await?;
                let at = Instant::now();
                if n != 1 {
                    bail!("the update of change {i} touched {n} rows");
                }
                let mut b = book.lock().expect("book");
                b.committed[i] = Some(at);
                b.commit_took[i] = Some(at - before);
            }
            anyhow::Ok(())
        }));
    }

    // Poller: reads every value of this phase at or after the first change
    // not yet resolved (arrived or superseded).
    let stop_poll = CancellationToken::new();
    let poller = {
        let mut db = rig.my_conn().await?;
        let book = book.clone();
        let tag = tag.clone();
        let stop = stop_poll.clone();
        tokio::spawn(async move {
            let mut first_open = 0usize;
            let stmt = db
                .prep(
                    "SELECT primary_address_city FROM contacts \
                     WHERE primary_address_city LIKE ? AND primary_address_city >= ?",
                )
                .await?;
            let like = format!("{tag}-%");
            while !stop.is_cancelled() && first_open < total {
                let seen: Vec<String> = db
                    .exec(&stmt, (like.as_str(), city(&tag, first_open)))
                    .await?;
                let now = Instant::now();
                {
                    let mut b = book.lock().expect("book");
                    for value in seen {
                        let Some(i) = value
                            .strip_prefix(&format!("{tag}-"))
                            .and_then(|n| n.parse::<usize>().ok())
                            .filter(|i| *i < total)
                        else {
                            continue;
                        };
                        if b.arrived[i].is_none() {
                            b.arrived[i] = Some(now);
                            // Earlier changes of the same customer not seen
                            // yet were overwritten before the poller came.
                            let mut j = i;
                            while j >= customers {
                                j -= customers;
                                if b.arrived[j].is_none() && !b.superseded[j] {
                                    b.superseded[j] = true;
                                }
                            }
                        }
                    }
                    while first_open < total
                        && (b.arrived[first_open].is_some() || b.superseded[first_open])
                    {
                        first_open += 1;
                    }
                }
                tokio::time::sleep(POLL_EVERY).await;
            }
            anyhow::Ok(())
        })
    };

    // Progress until the writers are done.
    let label = format!("latency {rate}/s");
    let mut last_print = Instant::now();
    while !writers.iter().all(|w| w.is_finished()) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        for (name, c) in connectors {
            c.check(name)?;
        }
        if last_print.elapsed() >= Duration::from_secs(2) {
            last_print = Instant::now();
            let b = book.lock().expect("book");
            eprintln!(
                "[{label}] {:>5.1} s: committed {}, arrived {} (of {total}); hub logged {}",
                start.elapsed().as_secs_f64(),
                b.committed.iter().flatten().count(),
                b.arrived.iter().flatten().count(),
                rig.hub_seq()
            );
        }
    }
    for w in writers {
        w.await??;
    }
    let (first, last) = {
        let b = book.lock().expect("book");
        let commits: Vec<Instant> = b.committed.iter().flatten().copied().collect();
        (
            commits.iter().min().copied().unwrap_or(start),
            commits.iter().max().copied().unwrap_or(start),
        )
    };
    eprintln!("[{label}] all {total} changes committed; waiting for the stragglers");
    let waited = Instant::now();
    loop {
        let open = {
            let b = book.lock().expect("book");
            (0..total)
                .filter(|&i| b.arrived[i].is_none() && !b.superseded[i])
                .count()
        };
        if open == 0 || poller.is_finished() || waited.elapsed() > STRAGGLER_DEADLINE {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop_poll.cancel();
    poller.await??;
    for w in watchers {
        w.abort();
    }

    let b = book.lock().expect("book");
    let mut latencies = Vec::new();
    let (mut capture, mut hub, mut write_back) = (Vec::new(), Vec::new(), Vec::new());
    let mut arrived = 0;
    for i in 0..total {
        if let (Some(c), Some(a)) = (b.committed[i], b.arrived[i]) {
            arrived += 1;
            latencies.push(a.saturating_duration_since(c));
            if let (Some(p), Some(g)) = (b.published[i], b.golden[i]) {
                capture.push(p.saturating_duration_since(c));
                hub.push(g.saturating_duration_since(p));
                write_back.push(a.saturating_duration_since(g));
            }
        }
    }
    let superseded = b.superseded.iter().filter(|s| **s).count();
    let span = last.saturating_duration_since(first).as_secs_f64();
    Ok(RateFigures {
        rate,
        sent: total,
        achieved: if span > 0.0 {
            (total - 1) as f64 / span
        } else {
            0.0
        },
        arrived,
        superseded,
        missing: total - arrived - superseded,
        latency: Spread::of(latencies),
        stages: [Spread::of(capture), Spread::of(hub), Spread::of(write_back)],
        commit: Spread::of(b.commit_took.iter().flatten().copied().collect()),
    })
}

/// The floor: the same update committed in PostgreSQL, then one committed
/// directly in MariaDB, one after the other, on copies of the tables that
/// no connector captures or writes.
async fn floor(rig: &Rig, samples: usize) -> anyhow::Result<Option<Spread>> {
    rig.pg
        .psql(
            "CREATE TABLE bench_floor (LIKE res_partner INCLUDING ALL); \
             INSERT INTO bench_floor SELECT * FROM res_partner;",
        )
        .context("the PostgreSQL floor table")?;
    rig.db
        .query(
            "CREATE TABLE bench_floor LIKE contacts; \
             INSERT INTO bench_floor SELECT * FROM contacts;",
        )
        .context("the MariaDB floor table")?;
    let pg = rig.pg_client().await?;
    let mut db = rig.my_conn().await?;
    let pg_ids: Vec<i32> = pg
        .query("SELECT id FROM bench_floor ORDER BY id", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let db_ids: Vec<String> = db.query("SELECT id FROM bench_floor ORDER BY id").await?;
    if pg_ids.is_empty() || db_ids.is_empty() {
        bail!("the floor tables are empty");
    }
    let pg_stmt = pg
        .prepare(
            "UPDATE bench_floor SET city = $1, write_date = now() AT TIME ZONE 'utc' WHERE id = $2",
        )
        .await?;
    let db_stmt = db
        .prep(
            "UPDATE bench_floor SET primary_address_city = ?, date_modified = UTC_TIMESTAMP() \
             WHERE id = ?",
        )
        .await?;
    let mut took = Vec::with_capacity(samples);
    for i in 0..samples {
        let value = city("floor", i);
        let t0 = Instant::now();
        pg.execute(&pg_stmt, &[&value, &pg_ids[i % pg_ids.len()]])
            .await?;
        db.exec_drop(
            &db_stmt,
            (value.as_str(), db_ids[i % db_ids.len()].as_str()),
        )
        .await?;
        took.push(t0.elapsed());
    }
    Ok(Spread::of(took))
}

struct LatencyFigures {
    customers: usize,
    seed_took: Duration,
    rates: Vec<RateFigures>,
    floor: Option<Spread>,
}

async fn latency(
    customers: usize,
    rates: &[u32],
    seconds: usize,
    floor_samples: usize,
) -> anyhow::Result<LatencyFigures> {
    let rig = Rig::start("latency").await?;
    let pg = rig.pg_client().await?;
    seed(&pg, 0, customers as i64).await?;
    let ids: Vec<i32> = pg
        .query("SELECT id FROM res_partner ORDER BY id", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let crm = rig.connector(&crm_toml(&rig.db)).await?;
    let start = Instant::now();
    let erp = rig.connector(&erp_toml(&rig.pg)).await?;
    let running = [("erp", &erp), ("crm", &crm)];
    eprintln!("[latency] {customers} customers seeded; waiting until MariaDB holds them");
    let seeded = wait_contacts(
        &rig,
        "latency seed",
        customers as u64,
        start,
        SEED_DEADLINE,
        &running,
    )
    .await?;
    let seed_took = seeded - start;
    eprintln!(
        "[latency] {customers} contacts in MariaDB after {:.1} s",
        seed_took.as_secs_f64()
    );
    // The hub links each CRM insert when the CRM connector reports it
    // back: let that settle, so that the first changes are not slowed by it.
    let settle = rig.hub_seq();
    tokio::time::sleep(Duration::from_secs(1)).await;
    eprintln!(
        "[latency] hub log {settle} -> {} after 1 s of quiet",
        rig.hub_seq()
    );

    let mut figures = Vec::new();
    for &rate in rates {
        eprintln!("[latency] {rate} changes/s for {seconds} s");
        let f = rate_phase(&rig, &ids, rate, seconds, &running).await?;
        if f.missing > 0 {
            eprintln!(
                "[latency] !!! {rate}/s: {} of {} changes not in MariaDB within {STRAGGLER_DEADLINE:?} of the last commit",
                f.missing, f.sent
            );
        }
        figures.push(f);
    }
    eprintln!("[latency] floor: {floor_samples} updates committed in PostgreSQL then MariaDB");
    let floor = floor(&rig, floor_samples).await?;
    erp.stop("erp").await?;
    crm.stop("crm").await?;
    rig.stop().await?;
    Ok(LatencyFigures {
        customers,
        seed_took,
        rates: figures,
        floor,
    })
}

// ---------------------------------------------------------------------------
// 2. Initial load
// ---------------------------------------------------------------------------

struct LoadFigures {
    rows: u64,
    took: Duration,
    copy_rows: u64,
    copy_bytes: u64,
    copy_took: Duration,
    hub_entries: u64,
}

/// `COPY (SELECT * FROM res_partner) TO STDOUT`: rows and bytes read.
async fn copy_out(pg: &tokio_postgres::Client) -> anyhow::Result<(u64, u64)> {
    let stream = pg
        .copy_out("COPY (SELECT * FROM res_partner) TO STDOUT")
        .await?;
    futures::pin_mut!(stream);
    let (mut rows, mut bytes) = (0u64, 0u64);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        bytes += chunk.len() as u64;
        rows += chunk.iter().filter(|b| **b == b'\n').count() as u64;
    }
    Ok((rows, bytes))
}

async fn initial_load(n: u64) -> anyhow::Result<LoadFigures> {
    let rig = Rig::start("load").await?;
    let pg = rig.pg_client().await?;
    let t = Instant::now();
    // In slices, so that a million rows do not make one huge transaction.
    let slice = 100_000u64;
    let mut done = 0;
    while done < n {
        let k = slice.min(n - done);
        seed(&pg, done as i64, k as i64).await?;
        done += k;
    }
    pg.execute("ANALYZE res_partner", &[]).await?;
    eprintln!(
        "[load] {n} rows in res_partner after {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let (copy_rows, copy_bytes) = copy_out(&pg).await?;
    let copy_took = t.elapsed();
    if copy_rows != n {
        bail!("COPY read {copy_rows} rows of {n}");
    }
    eprintln!(
        "[load] baseline COPY TO STDOUT: {copy_rows} rows, {copy_bytes} bytes in {:.2} s",
        copy_took.as_secs_f64()
    );

    let crm = rig.connector(&crm_toml(&rig.db)).await?;
    let start = Instant::now();
    let erp = rig.connector(&erp_toml(&rig.pg)).await?;
    let running = [("erp", &erp), ("crm", &crm)];
    let done = wait_contacts(&rig, "load", n, start, LOAD_DEADLINE, &running).await?;
    let took = done - start;
    let hub_entries = rig.hub_seq();
    erp.stop("erp").await?;
    crm.stop("crm").await?;
    rig.stop().await?;
    Ok(LoadFigures {
        rows: n,
        took,
        copy_rows,
        copy_bytes,
        copy_took,
        hub_entries,
    })
}

// ---------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------

fn print_latency(f: &LatencyFigures) {
    println!(
        "\n-- 1. propagation PostgreSQL (Odoo res_partner.city) -> hub -> MariaDB (SuiteCRM contacts.primary_address_city) --"
    );
    println!(
        "{} customers; seeded through the pipeline (Odoo load -> hub -> CRM inserts) in {:.1} s",
        f.customers,
        f.seed_took.as_secs_f64()
    );
    println!(
        "arrival poll every {} ms (adds up to that much to each latency); {WRITERS} writer connections",
        POLL_EVERY.as_millis()
    );
    for r in &f.rates {
        println!(
            "rate {:>5}/s: sent {}, achieved {:.0}/s, arrived {}, superseded before seen {}, missing {}{}",
            r.rate,
            r.sent,
            r.achieved,
            r.arrived,
            r.superseded,
            r.missing,
            if r.missing > 0 {
                "  <-- SHORTFALL: not in MariaDB within the straggler deadline"
            } else {
                ""
            }
        );
        if let Some(l) = &r.latency {
            println!("  commit -> in MariaDB: {}", l.line());
        }
        let names = [
            "commit -> change event on mdhub.in (capture)",
            "change event -> golden update on mdhub.out (hub)",
            "golden update -> in MariaDB (write-back + poll)",
        ];
        for (name, stage) in names.iter().zip(&r.stages) {
            if let Some(st) = stage {
                println!("    {name}: {}", st.line());
            }
        }
        if let Some(c) = &r.commit {
            println!("  PostgreSQL commit alone: {}", c.line());
        }
    }
    match &f.floor {
        Some(fl) => {
            println!(
                "floor (PostgreSQL commit + MariaDB commit, no hub): {}",
                fl.line()
            );
            for r in &f.rates {
                if let Some(l) = &r.latency {
                    println!(
                        "  {}/s: p50 {:.1}x floor p50, p99 {:.1}x floor p99",
                        r.rate,
                        l.p50.as_secs_f64() / fl.p50.as_secs_f64(),
                        l.p99.as_secs_f64() / fl.p99.as_secs_f64()
                    );
                }
            }
        }
        None => println!("floor: no samples"),
    }
    match f.rates.iter().find(|r| r.rate == TARGET_RATE) {
        Some(r) => {
            let met = r.missing == 0 && r.latency.as_ref().is_some_and(|l| l.p99 < TARGET_P99);
            println!(
                "target p99 < {} ms at {TARGET_RATE}/s: {} ({})",
                TARGET_P99.as_millis(),
                if met { "MET" } else { "NOT MET" },
                r.latency.as_ref().map_or_else(
                    || "no arrivals".into(),
                    |l| format!("p99 {:.1} ms", ms(l.p99))
                )
            );
        }
        None => println!("target p99 < 250 ms at {TARGET_RATE}/s: not measured (rate not run)"),
    }
}

fn print_load(f: &LoadFigures) {
    let rate = f.rows as f64 / f.took.as_secs_f64();
    let copy_rate = f.copy_rows as f64 / f.copy_took.as_secs_f64();
    println!(
        "\n-- 2. initial load: res_partner -> Odoo connector -> hub -> CRM connector inserts --"
    );
    println!(
        "end to end:  {} rows in {:.1} s = {rate:.0} rows/s (hub logged {} entries)",
        f.rows,
        f.took.as_secs_f64(),
        f.hub_entries
    );
    println!(
        "baseline:    COPY (SELECT * FROM res_partner) TO STDOUT: {} rows ({:.1} MiB) in {:.3} s = {copy_rate:.0} rows/s",
        f.copy_rows,
        f.copy_bytes as f64 / (1024.0 * 1024.0),
        f.copy_took.as_secs_f64()
    );
    println!(
        "ratio:       end to end is {:.2}% of COPY's rate ({:.0}x slower)",
        100.0 * rate / copy_rate,
        copy_rate / rate
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let slow = std::env::var("MDHUB_SLOW").is_ok_and(|v| v == "1");
    let customers = env_usize("MDHUB_BENCH_CUSTOMERS", 1000)?.max(1);
    let rates = env_rates()?;
    let seconds = env_usize("MDHUB_BENCH_SECONDS", 10)?.max(1);
    let floor_samples = env_usize("MDHUB_BENCH_FLOOR", 500)?.max(1);
    let load_rows = env_usize(
        "MDHUB_BENCH_LOAD_ROWS",
        if slow { 1_000_000 } else { 20_000 },
    )?
    .max(1) as u64;

    println!("== mdhub connector benchmark ==");
    println!(
        "latency: {customers} customers, rates {rates:?}/s for {seconds} s each, floor {floor_samples} samples; load: {load_rows} rows; tokio multi-thread, 2 workers; {} CPUs",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let lat = latency(customers, &rates, seconds, floor_samples).await?;
    print_latency(&lat);
    let load = initial_load(load_rows).await?;
    print_load(&load);
    let lost: usize = lat.rates.iter().map(|r| r.missing).sum();
    if lost > 0 {
        println!(
            "\n!!! {lost} changes not in MariaDB within {STRAGGLER_DEADLINE:?} of their phase's last commit (see above)"
        );
    }
    Ok(())
}
