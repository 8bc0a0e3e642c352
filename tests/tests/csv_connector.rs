//! The CSV connector through the runner (`mdhub_connectors::runner::run`)
//! over a real nats-server with the hub running in this process:
//! Salesforce-style exports dropped into the inbox become change events and
//! golden records, later exports publish only what changed, broken rows are
//! reported by line while the rest is applied, a file re-read after a crash
//! publishes the same event ids, the HubSpot preset, and golden updates
//! written back as Data Loader files.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use mdhub_connectors::csv::{CsvConfig, CsvConnector, LayoutConfig, Preset, PresetLayout};
use mdhub_connectors::mapping::Mapping;
use mdhub_connectors::publish::{OutMessage, Publisher};
use mdhub_connectors::runner::metrics::ConnectorMetrics;
use mdhub_connectors::runner::{self, RunContext, RunError};
use mdhub_hub::nats_bus::IN_STREAM;
use mdhub_schema::{ChangeEvent, GoldenUpdate, Model, Op, UpdateOp, SCHEMA_VERSION};
use mdhub_tests::hub_runner::{config, InProcessHub};
use mdhub_tests::nats::NatsServer;
use mdhub_tests::streams::read_all;
use mdhub_tests::wait::{wait_for, wait_until};
use serde_json::{json, Value};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const DEADLINE: Duration = Duration::from_secs(20);
const SUBJECT: &str = "mdhub.in.sf.customer";

const MAPPING: &str = r#"
phone_region = "DE"

[[field]]
canonical = "given_name"
column = "FirstName"

[[field]]
canonical = "family_name"
column = "LastName"

[[field]]
canonical = "email"
column = "Email"
transform = "email"

[[field]]
canonical = "phone"
column = "Phone"
transform = "phone"

[[field]]
canonical = "city"
column = "MailingCity"

[[field]]
canonical = "country"
column = "MailingCountry"
transform = "country"

[[field]]
canonical = "birth_date"
column = "Birthdate"
"#;

const HEADER: &str = "\"Id\",\"IsDeleted\",\"FirstName\",\"LastName\",\"Email\",\"Phone\",\
                      \"MailingCity\",\"MailingCountry\",\"Birthdate\",\"LastModifiedDate\"\n";

/// Four contacts as Data Loader exports them.
const FIRST: &str = "\
\"003A000001\",\"false\",\"Anna\",\"Schmidt\",\"Anna.Schmidt@Example.com\",\"030 1234567\",\"Berlin\",\"Germany\",\"1985-03-01\",\"2026-01-10T09:00:00.000Z\"
\"003A000002\",\"false\",\"Ben\",\"Meyer\",\"ben.meyer@example.com\",\"+49 40 7654321\",\"Hamburg\",\"Germany\",\"1990-07-15\",\"2026-01-11T09:00:00.000Z\"
\"003A000003\",\"false\",\"Clara\",\"Jones\",\"clara.jones@example.co.uk\",\"+44 20 7946 0958\",\"London\",\"United Kingdom\",\"\",\"2026-01-12T09:00:00.000Z\"
\"003A000004\",\"false\",\"David\",\"Roth\",\"david.roth@example.com\",\"\",\"Köln\",\"DE\",\"1979-12-31\",\"2026-01-13T09:00:00.000Z\"
";

/// The next export: Ben moved to Bremen, Eva is new, Clara is gone and
/// David is marked deleted (Data Loader's "export all" keeps such rows).
const SECOND: &str = "\
\"003A000001\",\"false\",\"Anna\",\"Schmidt\",\"Anna.Schmidt@Example.com\",\"030 1234567\",\"Berlin\",\"Germany\",\"1985-03-01\",\"2026-01-10T09:00:00.000Z\"
\"003A000002\",\"false\",\"Ben\",\"Meyer\",\"ben.meyer@example.com\",\"+49 40 7654321\",\"Bremen\",\"Germany\",\"1990-07-15\",\"2026-02-01T09:00:00.000Z\"
\"003A000004\",\"true\",\"David\",\"Roth\",\"david.roth@example.com\",\"\",\"Köln\",\"DE\",\"1979-12-31\",\"2026-02-02T10:30:00.000Z\"
\"003A000005\",\"false\",\"Eva\",\"Novak\",\"eva.novak@example.cz\",\"+420 601 123 456\",\"Praha\",\"Czechia\",\"1995-05-20\",\"2026-02-03T08:00:00.000Z\"
";

/// Line 3 has a field too few, line 4 bytes that are not UTF-8 (a Latin-1
/// "ö"), line 5 a date Data Loader never writes, line 6 a key longer than a
/// record id may be.
fn broken() -> Vec<u8> {
    let mut rows = HEADER.as_bytes().to_vec();
    rows.extend_from_slice(FIRST.lines().next().unwrap_or_default().as_bytes());
    rows.extend_from_slice(b"\n\"003A000002\",\"false\",\"Ben\",\"Meyer\",\"ben.meyer@example.com\",\"+49 40 7654321\",\"Hamburg\",\"Germany\",\"2026-01-11T09:00:00.000Z\"\n");
    rows.extend_from_slice(b"\"003A000003\",\"false\",\"Clara\",\"J\xf6nes\",\"clara.jones@example.co.uk\",\"+44 20 7946 0958\",\"London\",\"United Kingdom\",\"\",\"2026-01-12T09:00:00.000Z\"\n");
    rows.extend_from_slice(b"\"003A000004\",\"false\",\"David\",\"Roth\",\"david.roth@example.com\",\"\",\"K\xc3\xb6ln\",\"DE\",\"31.12.1979\",\"2026-01-13T09:00:00.000Z\"\n");
    let long = "7".repeat(300);
    rows.extend_from_slice(format!("\"{long}\",\"false\",\"Long\",\"Key\",\"long@example.com\",\"\",\"Ulm\",\"DE\",\"\",\"2026-01-13T09:00:00.000Z\"\n").as_bytes());
    rows.extend_from_slice(b"\"003A000006\",\"false\",\"Fritz\",\"Weber\",\"fritz@example.com\",\"\",\"Bonn\",\"DE\",\"\",\"2026-01-14T09:00:00.000Z\"\n");
    rows
}

/// One system `sf` with its hub, its bus, its folders and its connector.
struct Setup {
    _nats: NatsServer,
    hub: InProcessHub,
    js: jetstream::Context,
    publisher: Publisher,
    dir: tempfile::TempDir,
    mapping: String,
    connector: Option<Running>,
}

struct Running {
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), RunError>>,
    metrics: Arc<ConnectorMetrics>,
}

impl Setup {
    async fn start() -> anyhow::Result<Self> {
        let nats = NatsServer::start()?;
        let dir = tempfile::tempdir()?;
        let hub_config = config(
            "[system.sf]\nregion = \"DE\"\n",
            nats.client_url(),
            &dir.path().join("hub"),
        )?;
        let hub = InProcessHub::start(hub_config).await?;
        let client = nats.connect().await?;
        Ok(Setup {
            _nats: nats,
            hub,
            js: jetstream::new(client.clone()),
            publisher: Publisher::for_server(client),
            dir,
            mapping: MAPPING.to_string(),
            connector: None,
        })
    }

    fn folder(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn salesforce(&self) -> CsvConfig {
        CsvConfig {
            inbox: self.folder("inbox"),
            done: self.folder("done"),
            outbox: self.folder("outbox"),
            layout: LayoutConfig::Preset(PresetLayout {
                preset: Preset::SalesforceContacts,
                utc_offset: None,
                key_column: None,
            }),
            modified_column: Some("LastModifiedDate".into()),
            poll_interval: 0.02,
        }
    }

    /// Runs the connector through the runner, as `mdhub connector run` does.
    fn run(&mut self, config: &CsvConfig, write_back: bool) -> anyhow::Result<()> {
        let shutdown = CancellationToken::new();
        let metrics = Arc::new(ConnectorMetrics::default());
        let ctx = RunContext {
            system: "sf".into(),
            entity: "customer".into(),
            mapping: Mapping::parse(&self.mapping, "sf.toml", &Model::default_customer())?,
            publisher: self.publisher.clone(),
            state_dir: self.folder("state"),
            metrics: metrics.clone(),
            shutdown: shutdown.clone(),
            write_back,
            max_write_batch: 100,
        };
        let task = tokio::spawn(runner::run(CsvConnector::new(config)?, ctx));
        self.connector = Some(Running {
            shutdown,
            task,
            metrics,
        });
        Ok(())
    }

    async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(r) = self.connector.take() {
            r.shutdown.cancel();
            tokio::time::timeout(DEADLINE, r.task).await???;
        }
        Ok(())
    }

    /// The system drops an export: written under a name the connector
    /// skips, dated, then renamed.
    fn drop_file(
        &self,
        name: &str,
        bytes: &[u8],
        at: Option<OffsetDateTime>,
    ) -> anyhow::Result<()> {
        let inbox = self.folder("inbox");
        std::fs::create_dir_all(&inbox)?;
        let tmp = inbox.join(format!("{name}.part"));
        std::fs::write(&tmp, bytes)?;
        if let Some(at) = at {
            std::fs::File::options()
                .write(true)
                .open(&tmp)?
                .set_modified(at.into())?;
        }
        std::fs::rename(tmp, inbox.join(name))?;
        Ok(())
    }

    fn drop_export(&self, name: &str, rows: &str) -> anyhow::Result<()> {
        self.drop_file(name, format!("{HEADER}{rows}").as_bytes(), None)
    }

    /// Waits until the connector imported the file (it moves it to done
    /// after the cursor is saved) and the hub logged `entries` entries.
    async fn imported(&mut self, name: &str, entries: u64) -> anyhow::Result<()> {
        let done = self.folder("done").join(name);
        wait_until(&format!("{name} to be imported"), DEADLINE, || async {
            done.exists()
        })
        .await?;
        self.hub.wait_caught_up(entries, DEADLINE).await
    }

    async fn events(&self) -> anyhow::Result<Vec<ChangeEvent>> {
        read_all(&self.js, IN_STREAM, SUBJECT)
            .await?
            .iter()
            .map(|m| Ok(serde_json::from_slice(&m.payload)?))
            .collect()
    }

    /// The capture lines of the connector's reject file.
    fn rejected(&self) -> anyhow::Result<Vec<Value>> {
        let path = self.folder("state").join(runner::rejects::FILE_NAME);
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        text.lines().map(|l| Ok(serde_json::from_str(l)?)).collect()
    }

    fn golden(&self, key: &str) -> Option<Uuid> {
        self.hub.golden_of("sf", key)
    }

    fn values(&self, id: Uuid) -> BTreeMap<String, Value> {
        let hub = self.hub.hub.read().unwrap();
        hub.state()
            .record(id)
            .unwrap()
            .map(|r| r.values.clone())
            .unwrap_or_default()
    }

    fn retired(&self, id: Uuid) -> bool {
        let hub = self.hub.hub.read().unwrap();
        hub.state().record(id).unwrap().is_some_and(|r| r.retired)
    }

    fn golden_count(&self) -> usize {
        self.hub.hub.read().unwrap().state().golden_count()
    }
}

fn fields(pairs: Value) -> BTreeMap<String, Value> {
    serde_json::from_value(pairs).unwrap_or_default()
}

const KEYS: [&str; 4] = ["003A000001", "003A000002", "003A000003", "003A000004"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_load_links_one_golden_record_per_row_with_the_mapped_values() -> anyhow::Result<()>
{
    let mut s = Setup::start().await?;
    s.run(&s.salesforce(), false)?;
    // Old Data Loader versions: a byte order mark and upper-case headers.
    let header = HEADER
        .replace("\"Id\"", "\"ID\"")
        .replace("FirstName", "FIRSTNAME")
        .replace("\"Email\"", "\"email\"");
    s.drop_file(
        "contacts.csv",
        format!("\u{feff}{header}{FIRST}").as_bytes(),
        None,
    )?;
    s.imported("contacts.csv", 4).await?;

    let events = s.events().await?;
    assert_eq!(events.len(), 4);
    let anna = &events[0];
    assert_eq!(
        (anna.record_id.as_str(), anna.op, anna.system.as_str()),
        ("003A000001", Op::Upsert, "sf")
    );
    assert_eq!(
        anna.observed_at,
        time::macros::datetime!(2026-01-10 09:00 UTC)
    );
    assert_eq!(
        anna.fields,
        fields(json!({
            "given_name": "Anna", "family_name": "Schmidt",
            "email": "anna.schmidt@example.com", "phone": "+49301234567",
            "city": "Berlin", "country": "DE", "birth_date": "1985-03-01",
        })),
        "the BOM and the upper-case headers read as the API names"
    );
    assert!(
        !events[2].fields.contains_key("birth_date"),
        "an empty cell of a new record is left out"
    );

    let ids: Vec<Uuid> = KEYS
        .iter()
        .map(|k| {
            s.golden(k)
                .ok_or_else(|| anyhow::anyhow!("{k} is not linked"))
        })
        .collect::<anyhow::Result<_>>()?;
    assert_eq!(s.golden_count(), 4, "one golden record per row");
    let ben = s.values(ids[1]);
    assert_eq!(ben["given_name"], "Ben");
    assert_eq!(ben["city"], "Hamburg");
    let clara = s.values(ids[2]);
    assert_eq!(clara["country"], "GB");
    assert_eq!(s.values(ids[3])["birth_date"], "1979-12-31");
    assert!(!s.folder("inbox").join("contacts.csv").exists());
    s.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_export_publishes_the_edit_the_new_row_and_both_deletes_and_the_hub_applies_them(
) -> anyhow::Result<()> {
    let mut s = Setup::start().await?;
    s.run(&s.salesforce(), false)?;
    s.drop_export("contacts-1.csv", FIRST)?;
    s.imported("contacts-1.csv", 4).await?;
    let before: Vec<Option<Uuid>> = KEYS.iter().map(|k| s.golden(k)).collect();

    let exported_at = time::macros::datetime!(2026-02-05 06:00 UTC);
    s.drop_file(
        "contacts-2.csv",
        format!("{HEADER}{SECOND}").as_bytes(),
        Some(exported_at),
    )?;
    s.imported("contacts-2.csv", 8).await?;

    let events = s.events().await?;
    assert_eq!(events.len(), 8, "Anna is unchanged and not sent again");
    let new: Vec<(&str, Op)> = events[4..]
        .iter()
        .map(|e| (e.record_id.as_str(), e.op))
        .collect();
    assert_eq!(
        new,
        vec![
            ("003A000002", Op::Upsert),
            ("003A000005", Op::Upsert),
            ("003A000003", Op::Delete),
            ("003A000004", Op::Delete),
        ]
    );
    assert_eq!(events[4].fields["city"], "Bremen");
    assert_eq!(events[5].fields["country"], "CZ");
    assert!(events[6].fields.is_empty() && events[7].fields.is_empty());
    assert_eq!(
        events[6].observed_at, exported_at,
        "a row gone from the export was deleted by the time of the file"
    );
    assert_eq!(
        events[7].observed_at,
        time::macros::datetime!(2026-02-02 10:30 UTC),
        "a row marked deleted carries its own change time"
    );

    let ben = before[1].ok_or_else(|| anyhow::anyhow!("Ben is linked"))?;
    assert_eq!(s.values(ben)["city"], "Bremen");
    assert_eq!(s.values(ben)["given_name"], "Ben", "the rest stays");
    let eva = s
        .golden("003A000005")
        .ok_or_else(|| anyhow::anyhow!("Eva is linked"))?;
    assert_eq!(s.values(eva)["country"], "CZ");
    assert!(
        before[2].is_some_and(|id| s.retired(id)),
        "Clara's golden record retires"
    );
    assert!(
        before[3].is_some_and(|id| s.retired(id)),
        "David's golden record retires"
    );
    assert!(!before[0].is_some_and(|id| s.retired(id)));
    s.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_export_dropped_twice_publishes_nothing_the_second_time() -> anyhow::Result<()> {
    let mut s = Setup::start().await?;
    s.run(&s.salesforce(), false)?;
    s.drop_export("contacts-1.csv", FIRST)?;
    s.imported("contacts-1.csv", 4).await?;
    let seq = s.hub.last_seq();
    s.drop_export("contacts-2.csv", FIRST)?;
    s.imported("contacts-2.csv", 4).await?;
    assert_eq!(s.events().await?.len(), 4, "nothing new on MDHUB_IN");
    assert_eq!(s.hub.last_seq(), seq);
    s.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_rows_are_reported_by_line_and_the_other_rows_are_applied() -> anyhow::Result<()> {
    let mut s = Setup::start().await?;
    s.run(&s.salesforce(), false)?;
    s.drop_file("contacts.csv", &broken(), None)?;
    s.imported("contacts.csv", 2).await?;

    let rejected = s.rejected()?;
    let got: Vec<(&str, &str)> = rejected
        .iter()
        .map(|r| {
            (
                r["record_id"].as_str().unwrap_or_default(),
                r["reason"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    let long = "7".repeat(300);
    let expected = [
        ("003A000002", "line 3: 9 fields where the header has 10"),
        ("003A000003", "line 4: column LastName is not valid UTF-8"),
        ("003A000004", "line 5: column Birthdate is not a valid date"),
        (
            long.as_str(),
            "line 6: the key is 300 bytes, more than the 256",
        ),
    ];
    assert_eq!(got.len(), expected.len(), "{got:?}");
    for ((id, reason), (want_id, want)) in got.iter().zip(expected) {
        assert_eq!(*id, want_id);
        assert!(
            reason.starts_with(want),
            "{reason:?} does not start with {want:?}"
        );
    }
    assert!(rejected.iter().all(|r| r["direction"] == "capture"));
    let text = serde_json::to_string(&rejected)?;
    assert!(
        !text.contains("31.12.1979") && !text.contains("Meyer"),
        "no customer value in {text}"
    );

    assert!(s.golden("003A000001").is_some() && s.golden("003A000006").is_some());
    for key in ["003A000002", "003A000003", "003A000004"] {
        assert_eq!(s.golden(key), None, "rejected row {key} is not sent");
    }
    assert_eq!(s.events().await?.len(), 2);

    // Fixed in the next export, the held rows come in.
    s.drop_export("contacts-fixed.csv", FIRST)?;
    s.imported("contacts-fixed.csv", 6).await?;
    for key in KEYS {
        assert!(s.golden(key).is_some(), "{key} comes in once fixed");
    }
    assert!(
        !s.events()
            .await?
            .iter()
            .any(|e| e.op == Op::Delete && e.record_id == "003A000001"),
        "a row read before is not deleted"
    );
    s.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_file_is_moved_aside_and_the_folder_goes_on() -> anyhow::Result<()> {
    let mut s = Setup::start().await?;
    s.run(&s.salesforce(), false)?;
    s.drop_file("a-report.csv", b"Name,City\nAnna,Berlin\n", None)?;
    s.drop_export("b-contacts.csv", FIRST)?;
    s.imported("b-contacts.csv", 4).await?;
    assert!(s.folder("done").join("a-report.csv.rejected").exists());
    let rejected = s.rejected()?;
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0]["record_id"], "a-report.csv");
    let reason = rejected[0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("no key column \"Id\""), "{reason}");
    s.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_read_again_after_a_failed_cursor_save_is_published_with_the_same_ids(
) -> anyhow::Result<()> {
    let mut s = Setup::start().await?;
    // A directory where the checkpoint store writes its temporary file: the
    // cursor save fails after the publish, as a crash there would leave it
    // (this works for root too, unlike a read-only directory).
    let blocker = s.folder("state").join(".sf_customer_cursor.json.tmp");
    std::fs::create_dir_all(&blocker)?;
    s.run(&s.salesforce(), false)?;
    s.drop_export("contacts.csv", FIRST)?;
    let events = wait_for("the file to be published twice", DEADLINE, || async {
        let events = s.events().await?;
        Ok((events.len() >= 8).then_some(events))
    })
    .await?;
    let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
    assert_eq!(
        ids[..4],
        ids[4..8],
        "read again, published with the same ids"
    );
    assert!(
        s.folder("inbox").join("contacts.csv").exists(),
        "not confirmed, not moved"
    );

    std::fs::remove_dir(&blocker)?;
    s.imported("contacts.csv", 4).await?;
    // A later export: once its entries are logged, every copy before it was
    // seen by the hub, and the copies logged nothing.
    s.drop_export("contacts-2.csv", SECOND)?;
    s.imported("contacts-2.csv", 8).await?;
    assert_eq!(s.hub.last_seq(), 8, "each change logged once");
    assert_eq!(s.golden_count(), 5);
    s.stop().await
}

const HUBSPOT_MAPPING: &str = r#"
[[field]]
canonical = "given_name"
column = "First Name"
[[field]]
canonical = "family_name"
column = "Last Name"
[[field]]
canonical = "email"
column = "Email"
transform = "email"
[[field]]
canonical = "city"
column = "City"
[[field]]
canonical = "birth_date"
column = "Date of birth"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_preset_reads_labels_and_zone_less_times_in_the_account_offset(
) -> anyhow::Result<()> {
    let mut s = Setup::start().await?;
    s.mapping = HUBSPOT_MAPPING.to_string();
    let config: CsvConfig = serde_json::from_value(json!({
        "inbox": s.folder("inbox"),
        "done": s.folder("done"),
        "outbox": s.folder("outbox"),
        "layout": { "preset": "hubspot_contacts", "utc_offset": "+01:00" },
        "modified_column": "Last Modified Date",
        "poll_interval": 0.02,
    }))?;
    s.run(&config, false)?;
    let export = "Record ID,First Name,Last Name,Email,City,Date of birth,Last Modified Date\n\
                  51,Jürgen,\"Groß, Dr.\",Juergen@Example.de,München,1984-02-29,2024-03-12 09:14\n\
                  1204,\"Ana \"\"Nani\"\"\",Lima/Souza,ana@example.pt,Lisboa,,2024-01-01 00:30\n";
    s.drop_file("hubspot.csv", export.as_bytes(), None)?;
    s.imported("hubspot.csv", 2).await?;
    let events = s.events().await?;
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].record_id, "51");
    assert_eq!(
        events[0].observed_at,
        time::macros::datetime!(2024-03-12 08:14 UTC),
        "the account's local time, read at its offset"
    );
    assert_eq!(
        events[1].observed_at,
        time::macros::datetime!(2023-12-31 23:30 UTC)
    );
    let juergen = s
        .golden("51")
        .ok_or_else(|| anyhow::anyhow!("51 is linked"))?;
    let values = s.values(juergen);
    assert_eq!(values["family_name"], "Groß, Dr.");
    assert_eq!(values["email"], "juergen@example.de");
    assert_eq!(values["birth_date"], "1984-02-29");
    let ana = s
        .golden("1204")
        .ok_or_else(|| anyhow::anyhow!("1204 is linked"))?;
    assert_eq!(s.values(ana)["given_name"], "Ana \"Nani\"");
    s.stop().await
}

/// Publishes a golden update for `sf`, as the hub would.
async fn push(s: &Setup, record_id: &str, op: UpdateOp, fields: Value) -> anyhow::Result<()> {
    let update = GoldenUpdate {
        schema_version: SCHEMA_VERSION,
        update_id: Uuid::now_v7(),
        golden_id: Uuid::now_v7(),
        system: "sf".into(),
        entity: "customer".into(),
        record_id: Some(record_id.into()),
        op,
        fields: serde_json::from_value(fields)?,
        version: vec!["00".repeat(32)],
        log_seq: 0,
        caused_by: Uuid::now_v7(),
    };
    s.publisher
        .publish_all(vec![OutMessage::new(
            "mdhub.out.sf.customer",
            serde_json::to_vec(&update)?,
        )])
        .await?;
    Ok(())
}

/// The outbox's files in name order, with their text; not the hidden
/// ones (a file being written, the connector's state).
fn outbox(s: &Setup) -> anyhow::Result<Vec<(String, String)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(s.folder("outbox"))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().to_string();
        if entry.file_type()?.is_file() && !name.starts_with('.') {
            files.push((name, std::fs::read_to_string(entry.path())?));
        }
    }
    files.sort();
    Ok(files)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_updates_become_data_loader_files_and_their_export_is_no_edit() -> anyhow::Result<()>
{
    let mut s = Setup::start().await?;
    s.run(&s.salesforce(), true)?;
    s.drop_export("contacts-1.csv", FIRST)?;
    s.imported("contacts-1.csv", 4).await?;

    push(
        &s,
        "003A000002",
        UpdateOp::Upsert,
        json!({"city": "Potsdam", "birth_date": "1990-07-16"}),
    )
    .await?;
    let files = wait_for("the update file", DEADLINE, || async {
        let files = outbox(&s)?;
        Ok((!files.is_empty()).then_some(files))
    })
    .await?;
    let [(name, text)] = &files[..] else {
        anyhow::bail!("one file: {files:?}")
    };
    assert!(
        name.starts_with("mdhub-") && name.ends_with("-update.csv"),
        "{name}"
    );
    assert_eq!(
        text,
        "Id,Birthdate,MailingCity\n003A000002,1990-07-16,Potsdam\n"
    );

    push(&s, "003A000003", UpdateOp::Retire, json!({})).await?;
    let files = wait_for("the retire file", DEADLINE, || async {
        let files = outbox(&s)?;
        Ok((files.len() == 2).then_some(files))
    })
    .await?;

    assert_eq!(
        files[1].1, "Id,IsDeleted\n003A000003,true\n",
        "Salesforce's deleted column set, no delete file"
    );

    // The system imported both; its next export shows them, and they are
    // not published as edits.
    let second = FIRST
        .replace(
            "\"Hamburg\",\"Germany\",\"1990-07-15\"",
            "\"Potsdam\",\"Germany\",\"1990-07-16\"",
        )
        .replace("\"003A000003\",\"false\"", "\"003A000003\",\"true\"");
    s.drop_export("contacts-2.csv", &second)?;
    wait_until("contacts-2.csv to be imported", DEADLINE, || async {
        s.folder("done").join("contacts-2.csv").exists()
    })
    .await?;
    let metrics = s.connector.as_ref().map(|r| r.metrics.clone());
    let metrics = metrics.ok_or_else(|| anyhow::anyhow!("running"))?;
    assert_eq!(ConnectorMetrics::get(&metrics.echoes_suppressed), 2);
    assert_eq!(s.events().await?.len(), 4, "no echo published");
    assert_eq!(ConnectorMetrics::get(&metrics.updates_applied), 2);
    s.stop().await
}
