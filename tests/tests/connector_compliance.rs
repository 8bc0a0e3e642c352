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
