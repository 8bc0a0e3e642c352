//! Every connector through the shared compliance scenario
//! (`mdhub_tests::compliance`), each against its real system.

use mdhub_connectors::contract::Row;
use mdhub_connectors::mapping::Mapping;
use mdhub_connectors::sample::{SampleConnector, SampleTable};
use mdhub_schema::Model;
use mdhub_tests::compliance::{run_compliance, Fields, SystemUnderTest};

/// The in-memory sample table: the runner's own check, with no database.
struct Sample {
    connector: SampleConnector,
    next: u32,
}

const SAMPLE_MAPPING: &str = r#"
[[field]]
canonical = "given_name"
column = "first"
[[field]]
canonical = "family_name"
column = "last"
[[field]]
canonical = "email"
column = "mail"
transform = "email"
[[field]]
canonical = "city"
column = "town"
"#;

impl Sample {
    fn mapping() -> Mapping {
        Mapping::parse(SAMPLE_MAPPING, "sample", &Model::default_customer()).expect("mapping")
    }

    fn table(&self) -> &SampleTable {
        &self.connector.table
    }
}

impl SystemUnderTest for Sample {
    type Connector = SampleConnector;

    fn name(&self) -> &str {
        "sample"
    }

    fn connector(&self) -> SampleConnector {
        self.connector.clone()
    }

    fn mapping(&self) -> String {
        SAMPLE_MAPPING.to_string()
    }

    async fn insert(&mut self, fields: &Fields) -> anyhow::Result<String> {
        self.next += 1;
        // Keys that hurt: quotes, a slash, unicode.
        let id = format!("s/{}'\"ü", self.next);
        let row: Row = Sample::mapping()
            .to_system(fields)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let cols: Vec<(&str, serde_json::Value)> =
            row.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        self.table().edit(&id, &cols);
        Ok(id)
    }

    async fn set_city(&mut self, record_id: &str, city: &str) -> anyhow::Result<()> {
        self.table().edit(record_id, &[("town", city.into())]);
        Ok(())
    }

    async fn delete(&mut self, record_id: &str) -> anyhow::Result<()> {
        self.table().delete(record_id);
        Ok(())
    }

    async fn read(&mut self, record_id: &str) -> anyhow::Result<Option<Fields>> {
        self.table()
            .row(record_id)
            .map(|row| Sample::mapping().to_canonical(&row))
            .transpose()
            .map_err(|e| anyhow::anyhow!("{e:?}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_table_connector_is_compliant() -> anyhow::Result<()> {
    run_compliance(Sample {
        connector: SampleConnector::default(),
        next: 0,
    })
    .await
}

// ---------------------------------------------------------------------------
// The CSV connector: a system that exchanges files. A user edit is a new
// full export dropped into the inbox; the system imports the connector's
// write-back files from the outbox (in name order) before each edit and
// each read, as a system importing on a schedule would.

mod csv_system {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};

    use anyhow::Context as _;
    use mdhub_connectors::csv::{read_export, CsvConfig, CsvConnector, CsvLayout, LayoutConfig};
    use mdhub_connectors::mapping::Mapping;
    use mdhub_schema::Model;
    use mdhub_tests::compliance::{Fields, SystemUnderTest};
    use serde_json::Value;

    const KEY: &str = "Kunden-Nr.";
    const COLUMNS: [&str; 5] = [KEY, "Vorname", "Nachname", "E-Mail", "Ort"];

    pub const MAPPING: &str = r#"
[[field]]
canonical = "given_name"
column = "Vorname"
[[field]]
canonical = "family_name"
column = "Nachname"
[[field]]
canonical = "email"
column = "E-Mail"
transform = "email"
[[field]]
canonical = "city"
column = "Ort"
"#;

    /// The system's table: its rows by key, text cells by column.
    pub struct CsvSystem {
        dir: tempfile::TempDir,
        rows: BTreeMap<String, BTreeMap<String, String>>,
        imported: BTreeSet<String>,
        next: u32,
        exports: u32,
    }

    /// Semicolons and no deleted column: a retire comes as a delete file.
    fn layout() -> CsvLayout {
        let mut layout = CsvLayout::generic(KEY);
        layout.delimiter = ';';
        layout
    }

    fn quoted(cell: &str) -> String {
        format!("\"{}\"", cell.replace('"', "\"\""))
    }

    impl CsvSystem {
        pub fn new() -> anyhow::Result<Self> {
            Ok(CsvSystem {
                dir: tempfile::tempdir()?,
                rows: BTreeMap::new(),
                imported: BTreeSet::new(),
                next: 0,
                exports: 0,
            })
        }

        fn folder(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }

        fn mapping() -> anyhow::Result<Mapping> {
            Ok(Mapping::parse(MAPPING, "csv", &Model::default_customer())?)
        }

        /// Imports the write-back files not imported yet, in name order.
        fn import_outbox(&mut self) -> anyhow::Result<()> {
            let outbox = self.folder("outbox");
            let mut names: Vec<String> = match std::fs::read_dir(&outbox) {
                Ok(entries) => entries
                    .filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .filter(|n| n.ends_with(".csv") && !n.starts_with('.'))
                    .collect(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e.into()),
            };
            names.sort();
            for name in names {
                if self.imported.contains(&name) {
                    continue;
                }
                self.import_file(&outbox.join(&name))
                    .with_context(|| format!("importing {name}"))?;
                self.imported.insert(name);
            }
            Ok(())
        }

        fn import_file(&mut self, path: &Path) -> anyhow::Result<()> {
            let name = path.to_string_lossy().to_string();
            let export = read_export(&layout(), std::fs::File::open(path)?)?;
            anyhow::ensure!(
                export.rejected.is_empty(),
                "the system's importer refuses rows of {name}: {:?}",
                export.rejected
            );
            for row in export.rows {
                if name.ends_with("-delete.csv") {
                    anyhow::ensure!(export.headers == [KEY], "a delete file has only keys");
                    self.rows.remove(&row.key);
                } else if name.ends_with("-insert.csv") {
                    anyhow::ensure!(
                        row.key.starts_with("mdhub-") && !self.rows.contains_key(&row.key),
                        "an insert of a new key"
                    );
                    let mut cells: BTreeMap<String, String> = COLUMNS
                        .iter()
                        .map(|c| (c.to_string(), String::new()))
                        .collect();
                    cells.extend(row.columns);
                    self.rows.insert(row.key, cells);
                } else if name.ends_with("-update.csv") {
                    // An update of a record the system does not hold fails
                    // in the system's importer; here it is a test failure.
                    let cells = self
                        .rows
                        .get_mut(&row.key)
                        .with_context(|| format!("an update of unknown key {}", row.key))?;
                    cells.extend(row.columns);
                } else {
                    anyhow::bail!("an outbox file of no known kind: {name}");
                }
            }
            Ok(())
        }

        /// The system's full export, dropped into the inbox under a
        /// temporary name and renamed, as an exporter must.
        fn export(&mut self) -> anyhow::Result<()> {
            self.exports += 1;
            let mut text = COLUMNS.map(quoted).join(";");
            text.push_str("\r\n");
            for cells in self.rows.values() {
                let line: Vec<String> = COLUMNS
                    .iter()
                    .map(|c| quoted(cells.get(*c).map_or("", String::as_str)))
                    .collect();
                text.push_str(&line.join(";"));
                text.push_str("\r\n");
            }
            let inbox = self.folder("inbox");
            std::fs::create_dir_all(&inbox)?;
            let name = format!("kunden-{:05}.csv", self.exports);
            let tmp = inbox.join(format!("{name}.part"));
            std::fs::write(&tmp, text)?;
            std::fs::rename(tmp, inbox.join(name))?;
            Ok(())
        }
    }

    impl SystemUnderTest for CsvSystem {
        type Connector = CsvConnector;

        fn name(&self) -> &str {
            "kunden"
        }

        fn connector(&self) -> CsvConnector {
            let config = CsvConfig {
                inbox: self.folder("inbox"),
                done: self.folder("done"),
                outbox: self.folder("outbox"),
                layout: LayoutConfig::Inline(layout()),
                modified_column: None,
                poll_interval: 0.02,
            };
            CsvConnector::new(&config).expect("a valid configuration")
        }

        fn mapping(&self) -> String {
            MAPPING.to_string()
        }

        async fn insert(&mut self, fields: &Fields) -> anyhow::Result<String> {
            self.import_outbox()?;
            self.next += 1;
            // Keys that hurt: quotes, the delimiter, unicode, '%', '/'.
            let key = format!("K-{} \"Ä\"; 50%/x", self.next);
            let row = Self::mapping()?
                .to_system(fields)
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            let mut cells: BTreeMap<String, String> = row
                .into_iter()
                .map(|(c, v)| (c, v.as_str().unwrap_or_default().to_string()))
                .collect();
            cells.insert(KEY.to_string(), key.clone());
            self.rows.insert(key.clone(), cells);
            self.export()?;
            Ok(key)
        }

        async fn set_city(&mut self, record_id: &str, city: &str) -> anyhow::Result<()> {
            self.import_outbox()?;
            self.rows
                .get_mut(record_id)
                .with_context(|| format!("no record {record_id}"))?
                .insert("Ort".to_string(), city.to_string());
            self.export()
        }

        async fn delete(&mut self, record_id: &str) -> anyhow::Result<()> {
            self.import_outbox()?;
            self.rows.remove(record_id);
            self.export()
        }

        async fn read(&mut self, record_id: &str) -> anyhow::Result<Option<Fields>> {
            self.import_outbox()?;
            let Some(cells) = self.rows.get(record_id) else {
                return Ok(None);
            };
            let row = cells
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(c, v)| (c.clone(), Value::String(v.clone())))
                .collect();
            Ok(Some(
                Self::mapping()?
                    .to_canonical(&row)
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?,
            ))
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_drop_folder_connector_is_compliant() -> anyhow::Result<()> {
    run_compliance(csv_system::CsvSystem::new()?).await
}

// ---------------------------------------------------------------------------
// The real systems of `mdhub_tests::systems`: Odoo on PostgreSQL, SuiteCRM
// on MariaDB, a REST API on json-server.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_odoo_connector_is_compliant() -> anyhow::Result<()> {
    run_compliance(mdhub_tests::systems::odoo::Odoo::start("odoo").await?).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_suitecrm_connector_is_compliant() -> anyhow::Result<()> {
    run_compliance(mdhub_tests::systems::suitecrm::SuiteCrm::start("suitecrm").await?).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_rest_connector_is_compliant() -> anyhow::Result<()> {
    run_compliance(mdhub_tests::systems::rest::RestApi::start("oa").await?).await
}

/// The systems' own edits (bulk insert, any field, the whole table), which
/// tests of many records rely on, hold on each real system.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_systems_user_edits_hold() -> anyhow::Result<()> {
    use mdhub_tests::systems::{check_user_edits, odoo, rest, suitecrm};
    let n = 1000;
    let took = check_user_edits(&mut odoo::Odoo::start("odoo").await?, n).await?;
    eprintln!("odoo: {n} inserted in {took:?}");
    let took = check_user_edits(&mut suitecrm::SuiteCrm::start("suitecrm").await?, n).await?;
    eprintln!("suitecrm: {n} inserted in {took:?}");
    let took = check_user_edits(&mut rest::RestApi::start("oa").await?, n).await?;
    eprintln!("rest: {n} inserted in {took:?}");
    Ok(())
}
