//! The CSV connector's capture side over a real nats-server with the hub
//! running in this process: Salesforce-style exports imported as change
//! events, the hub's golden records built from them, re-imports that
//! publish only what changed, broken rows reported by line, and a crash
//! between the publish and the snapshot save.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_nats::jetstream;
use mdhub_connectors::checkpoint::CheckpointStore;
use mdhub_connectors::csv::{
    CsvLayout, CsvSource, CsvSourceError, ImportReport, RejectReason, RowError,
};
use mdhub_connectors::mapping::Mapping;
use mdhub_connectors::publish::Publisher;
use mdhub_hub::golden::SourceKey;
use mdhub_hub::nats_bus::IN_STREAM;
use mdhub_schema::{ChangeEvent, Model, Op};
use mdhub_tests::hub_runner::{config, InProcessHub};
use mdhub_tests::nats::NatsServer;
use mdhub_tests::streams::read_all;
use serde_json::{json, Value};
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

/// Line 3 has a field too few, line 4 a date Data Loader never writes.
const BROKEN: &str = "\
\"003A000001\",\"false\",\"Anna\",\"Schmidt\",\"anna.schmidt@example.com\",\"030 1234567\",\"Berlin\",\"Germany\",\"1985-03-01\",\"2026-01-10T09:00:00.000Z\"
\"003A000002\",\"false\",\"Ben\",\"Meyer\",\"ben.meyer@example.com\",\"+49 40 7654321\",\"Hamburg\",\"Germany\",\"2026-01-11T09:00:00.000Z\"
\"003A000003\",\"false\",\"Clara\",\"Jones\",\"clara.jones@example.co.uk\",\"+44 20 7946 0958\",\"London\",\"United Kingdom\",\"31.12.1979\",\"2026-01-12T09:00:00.000Z\"
\"003A000004\",\"false\",\"David\",\"Roth\",\"david.roth@example.com\",\"\",\"Köln\",\"DE\",\"1979-12-31\",\"2026-01-13T09:00:00.000Z\"
";

/// One system `sf` with its hub, its bus and its checkpoint directory.
struct Setup {
    _nats: NatsServer,
    hub: InProcessHub,
    js: jetstream::Context,
    publisher: Publisher,
    checkpoints: CheckpointStore,
    checkpoint_dir: PathBuf,
    source: CsvSource,
    dir: tempfile::TempDir,
    /// Events published so far: each is one hub log entry.
    published: u64,
}

impl Setup {
    async fn start() -> anyhow::Result<Self> {
        Self::start_with(MAPPING).await
    }

    async fn start_with(mapping: &str) -> anyhow::Result<Self> {
        let nats = NatsServer::start()?;
        let dir = tempfile::tempdir()?;
        let hub_config = config(
            "[system.sf]\nregion = \"DE\"\n",
            nats.client_url(),
            &dir.path().join("hub"),
        )?;
        let hub = InProcessHub::start(hub_config).await?;
        let client = nats.connect().await?;
        let js = jetstream::new(client.clone());
        let checkpoint_dir = dir.path().join("checkpoints");
        let source = CsvSource {
            system: "sf".to_string(),
            layout: CsvLayout::salesforce_contacts(),
            mapping: Mapping::parse(mapping, "sf.toml", &Model::default_customer())?,
            modified_column: Some("LastModifiedDate".to_string()),
        };
        Ok(Setup {
            _nats: nats,
            hub,
            js,
            publisher: Publisher::for_server(client),
            checkpoints: CheckpointStore::open(&checkpoint_dir)?,
            checkpoint_dir,
            source,
            dir,
            published: 0,
        })
    }

    fn write(&self, name: &str, rows: &str) -> anyhow::Result<PathBuf> {
        let path = self.dir.path().join(name);
        std::fs::write(&path, format!("{HEADER}{rows}"))?;
        Ok(path)
    }

    async fn import(&mut self, file: &Path) -> Result<ImportReport, CsvSourceError> {
        let report = self
            .source
            .import(file, &self.publisher, &self.checkpoints)
            .await?;
        self.published += (report.upserts_published + report.deletes_published) as u64;
        Ok(report)
    }

    async fn caught_up(&mut self) -> anyhow::Result<()> {
        self.hub.wait_caught_up(self.published, DEADLINE).await
    }

    async fn events(&self) -> anyhow::Result<Vec<ChangeEvent>> {
        read_all(&self.js, IN_STREAM, SUBJECT)
            .await?
            .iter()
            .map(|m| Ok(serde_json::from_slice(&m.payload)?))
            .collect()
    }

    fn golden(&self, key: &str) -> Option<Uuid> {
        self.hub.hub.read().unwrap().state().golden_of(&SourceKey {
            system: "sf".into(),
            record_id: key.into(),
        })
    }

    fn values(&self, id: Uuid) -> BTreeMap<String, Value> {
        let hub = self.hub.hub.read().unwrap();
        hub.state()
            .record(id)
            .expect("golden record")
            .values
            .clone()
    }

    fn retired(&self, id: Uuid) -> bool {
        let hub = self.hub.hub.read().unwrap();
        hub.state().record(id).expect("golden record").retired
    }

    fn golden_count(&self) -> usize {
        self.hub.hub.read().unwrap().state().golden_count()
    }

    /// Each key's golden record and its values: what a re-import must leave
    /// as it is.
    fn golden_view(&self, keys: &[&str]) -> BTreeMap<String, (Uuid, BTreeMap<String, Value>)> {
        keys.iter()
            .map(|k| {
                let id = self.golden(k).unwrap_or_else(|| panic!("{k} is linked"));
                (k.to_string(), (id, self.values(id)))
            })
            .collect()
    }
}

fn fields(pairs: Value) -> BTreeMap<String, Value> {
    serde_json::from_value(pairs).unwrap()
}

const KEYS: [&str; 4] = ["003A000001", "003A000002", "003A000003", "003A000004"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_load_links_one_golden_record_per_row_with_the_mapped_values() -> anyhow::Result<()>
{
    let mut s = Setup::start().await?;
    let file = s.write("contacts.csv", FIRST)?;
    let report = s.import(&file).await?;
    assert_eq!(
        report,
        ImportReport {
            rows_read: 4,
            upserts_published: 4,
            ..ImportReport::default()
        }
    );
    s.caught_up().await?;

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
        }))
    );
    assert!(
        !events[2].fields.contains_key("birth_date"),
        "an empty cell of a new record is left out"
    );

    let ids: Vec<Uuid> = KEYS.iter().map(|k| s.golden(k).expect("linked")).collect();
    assert_eq!(s.golden_count(), 4, "one golden record per row");
    let ben = s.values(ids[1]);
    assert_eq!(ben["given_name"], "Ben");
    assert_eq!(ben["city"], "Hamburg");
    assert_eq!(ben["email"], "ben.meyer@example.com");
    let clara = s.values(ids[2]);
    assert_eq!(clara["country"], "GB");
    assert_eq!(clara["family_name"], "Jones");
    assert_eq!(s.values(ids[3])["birth_date"], "1979-12-31");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_export_publishes_the_edit_the_new_row_and_both_deletes_and_the_hub_applies_them(
) -> anyhow::Result<()> {
    let mut s = Setup::start().await?;
    let first = s.write("contacts-1.csv", FIRST)?;
    s.import(&first).await?;
    s.caught_up().await?;
    let before: Vec<Uuid> = KEYS.iter().map(|k| s.golden(k).expect("linked")).collect();

    let second = s.write("contacts-2.csv", SECOND)?;
    let exported_at = time::macros::datetime!(2026-02-05 06:00 UTC);
    std::fs::File::options()
        .write(true)
        .open(&second)?
        .set_modified(exported_at.into())?;
    let report = s.import(&second).await?;
    assert_eq!(
        report,
        ImportReport {
            rows_read: 4,
            unchanged: 1,
            upserts_published: 2,
            deletes_published: 2,
            ..ImportReport::default()
        }
    );
    s.caught_up().await?;

    let events = s.events().await?;
    let new: Vec<(&str, Op, &BTreeMap<String, Value>)> = events[4..]
        .iter()
        .map(|e| (e.record_id.as_str(), e.op, &e.fields))
        .collect();
    let eva = fields(json!({
        "given_name": "Eva", "family_name": "Novak", "email": "eva.novak@example.cz",
        "phone": "+420601123456", "city": "Praha", "country": "CZ", "birth_date": "1995-05-20",
    }));
    let none = BTreeMap::new();
    assert_eq!(
        new,
        vec![
            ("003A000002", Op::Upsert, &fields(json!({"city": "Bremen"}))),
            ("003A000005", Op::Upsert, &eva),
            ("003A000003", Op::Delete, &none),
            ("003A000004", Op::Delete, &none),
        ],
        "only the changed field of the edit; deletes without fields"
    );
    assert_eq!(
        events[6].observed_at, exported_at,
        "a row gone from the export was deleted by the time of the file"
    );
    assert_eq!(
        events[7].observed_at,
        time::macros::datetime!(2026-02-02 10:30 UTC),
        "a row marked deleted carries its own change time"
    );

    assert_eq!(s.values(before[1])["city"], "Bremen");
    assert_eq!(s.values(before[1])["given_name"], "Ben", "the rest stays");
    let eva_id = s.golden("003A000005").expect("Eva is linked");
    assert_eq!(s.values(eva_id)["country"], "CZ");
    assert!(s.retired(before[2]), "Clara's golden record retires");
    assert!(s.retired(before[3]), "David's golden record retires");
    assert!(!s.retired(before[0]) && !s.retired(before[1]));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_file_imported_twice_publishes_nothing_the_second_time() -> anyhow::Result<()> {
    let mut s = Setup::start().await?;
    let file = s.write("contacts.csv", FIRST)?;
    s.import(&file).await?;
    s.caught_up().await?;
    let seq = s.hub.last_seq();

    let again = s.import(&file).await?;
    assert_eq!(
        again,
        ImportReport {
            rows_read: 4,
            unchanged: 4,
            ..ImportReport::default()
        }
    );
    assert_eq!(s.events().await?.len(), 4, "nothing new on MDHUB_IN");
    assert_eq!(s.hub.last_seq(), seq);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_rows_are_reported_by_line_and_the_other_rows_are_applied() -> anyhow::Result<()> {
    let mut s = Setup::start().await?;
    let file = s.write("contacts.csv", BROKEN)?;
    let report = s.import(&file).await?;
    assert_eq!((report.rows_read, report.upserts_published), (4, 2));
    let rejected: Vec<(u64, Option<&str>, &RejectReason)> = report
        .rejected
        .iter()
        .map(|r| (r.line, r.key.as_deref(), &r.reason))
        .collect();
    assert_eq!(
        rejected,
        vec![
            (
                3,
                Some("003A000002"),
                &RejectReason::Csv(RowError::ColumnCount {
                    found: 9,
                    expected: 10
                })
            ),
            (
                4,
                Some("003A000003"),
                &RejectReason::Csv(RowError::InvalidDate {
                    column: "Birthdate".into(),
                    expected: "yyyy-MM-dd"
                })
            ),
        ]
    );
    s.caught_up().await?;
    assert!(s.golden("003A000001").is_some() && s.golden("003A000004").is_some());
    assert_eq!(s.golden("003A000002"), None, "a rejected row is not sent");
    assert_eq!(s.golden("003A000003"), None);

    // Fixed in the next export, the held rows come in.
    let fixed = s.write("contacts-fixed.csv", FIRST)?;
    let report = s.import(&fixed).await?;
    assert_eq!((report.upserts_published, report.unchanged), (2, 2));
    s.caught_up().await?;
    assert!(s.golden("003A000002").is_some() && s.golden("003A000003").is_some());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_publish_and_snapshot_save_republishes_and_the_hub_ends_the_same(
) -> anyhow::Result<()> {
    let mut s = Setup::start().await?;
    let file = s.write("contacts.csv", FIRST)?;
    // A directory where the store writes its temporary file: the save fails
    // after the publish, as a crash at that point would leave it (this
    // works for root too, unlike a read-only directory).
    let blocker = s.checkpoint_dir.join(".csv_sf.json.tmp");
    std::fs::create_dir(&blocker)?;
    match s.import(&file).await {
        Err(CsvSourceError::SnapshotNotSaved { published, .. }) => assert_eq!(published, 4),
        other => panic!("expected the save to fail after the publish: {other:?}"),
    }
    s.published += 4;
    s.caught_up().await?;
    let after_crash = s.golden_view(&KEYS);
    let hash_after_crash = s.hub.state_hash();

    std::fs::remove_dir(&blocker)?;
    let report = s.import(&file).await?;
    assert_eq!(
        report.upserts_published, 4,
        "without a snapshot the file is new again"
    );
    s.caught_up().await?;
    assert_eq!(s.events().await?.len(), 8);
    assert_eq!(s.golden_view(&KEYS), after_crash, "same links, same values");
    assert_eq!(s.golden_count(), 4, "no record applied twice as new");
    assert_eq!(
        s.hub.state_hash(),
        hash_after_crash,
        "the second copy of each change changes nothing"
    );

    let third = s.import(&file).await?;
    assert_eq!(
        third.upserts_published, 0,
        "the snapshot is saved this time"
    );
    Ok(())
}

/// The mapping with the countries as a closed list, as a system with a
/// country picklist has them.
fn picklist_mapping() -> String {
    MAPPING.replace(
        "transform = \"country\"",
        "transform = { lookup = { Germany = \"DE\", DE = \"DE\", \"United Kingdom\" = \"GB\" } }\nread_only = true",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_the_mapping_refuses_is_reported_with_line_key_and_field_and_retried_next_time(
) -> anyhow::Result<()> {
    let mut s = Setup::start_with(&picklist_mapping()).await?;
    let atlantis = FIRST.replace("\"United Kingdom\"", "\"Atlantis\"");
    let file = s.write("contacts-1.csv", &atlantis)?;
    let report = s.import(&file).await?;
    assert_eq!((report.rows_read, report.upserts_published), (4, 3));
    let [refused] = &report.rejected[..] else {
        panic!("one refused row: {:?}", report.rejected)
    };
    assert_eq!(
        (refused.line, refused.key.as_deref()),
        (4, Some("003A000003"))
    );
    let RejectReason::Mapping(errors) = &refused.reason else {
        panic!("refused by the mapping: {refused:?}")
    };
    assert_eq!(
        errors
            .iter()
            .map(|e| (e.column.as_str(), e.field.as_str()))
            .collect::<Vec<_>>(),
        vec![("MailingCountry", "country")]
    );
    let text = refused.reason.to_string();
    assert!(!text.contains("Atlantis"), "no customer value in {text}");
    s.caught_up().await?;
    assert_eq!(s.golden("003A000003"), None);
    let ben = s.golden("003A000002").expect("Ben is linked");

    // Clara fixed, Ben's edit refused: his record keeps its values, and the
    // next import tries his row again.
    let second = FIRST.replace("\"Hamburg\",\"Germany\"", "\"Bremen\",\"Atlantis\"");
    let file = s.write("contacts-2.csv", &second)?;
    let report = s.import(&file).await?;
    assert_eq!((report.upserts_published, report.unchanged), (1, 2));
    assert_eq!(report.rejected.len(), 1);
    assert_eq!(
        (report.rejected[0].line, report.rejected[0].key.as_deref()),
        (3, Some("003A000002"))
    );
    s.caught_up().await?;
    assert!(s.golden("003A000003").is_some(), "Clara comes in");
    assert_eq!(
        s.values(ben)["city"],
        "Hamburg",
        "the refused edit is not sent"
    );
    let again = s.import(&file).await?;
    assert_eq!(again.rejected.len(), 1, "the refused row is retried");
    assert_eq!(again.upserts_published, 0);
    Ok(())
}
