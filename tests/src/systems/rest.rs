//! An order-administration system behind a REST API: json-server 0.17.4
//! (`crate::json_server`) with a `customers` collection, the HTTP connector
//! polling it often, and a plain mapping ([`MAPPING`]). A user's edits are
//! the API's own calls: POST, PATCH, DELETE.

use std::collections::BTreeMap;

use anyhow::Context as _;
use futures::{StreamExt as _, TryStreamExt as _};
use mdhub_connectors::contract::Row;
use mdhub_connectors::http::HttpConfig;
use mdhub_connectors::mapping::Mapping;
use reqwest::{StatusCode, Url};
use serde_json::{json, Value};

use super::{hostile_key, parse_mapping, to_fields, to_row, UserEdits};
use crate::compliance::{Fields, SystemUnderTest};
use crate::json_server::JsonServer;

/// The collection the customers are in.
pub const COLLECTION: &str = "customers";

/// The API's record fields are the canonical names.
pub const MAPPING: &str = r#"
[[field]]
canonical = "given_name"
column = "given_name"
[[field]]
canonical = "family_name"
column = "family_name"
[[field]]
canonical = "email"
column = "email"
transform = "email"
[[field]]
canonical = "city"
column = "city"
[[field]]
canonical = "phone"
column = "phone"
transform = "phone"
"#;

/// How many requests `insert_many` keeps in flight: json-server writes its
/// whole file on every write, so more would only queue.
const IN_FLIGHT: usize = 8;

/// A running json-server and an HTTP client of its users.
pub struct RestApi {
    name: String,
    server: JsonServer,
    client: reqwest::Client,
    base: Url,
    mapping: Mapping,
    /// Holds the connector's known-ids file, so deletes made while it is
    /// stopped are found.
    state: tempfile::TempDir,
}

impl RestApi {
    /// Starts json-server with an empty `customers` collection; `name` is
    /// the system's name in the hub.
    pub async fn start(name: &str) -> anyhow::Result<Self> {
        let server = JsonServer::start(&json!({ COLLECTION: [] }))?;
        let base = Url::parse(&format!("{}/{COLLECTION}", server.url()))?;
        Ok(RestApi {
            name: name.to_string(),
            server,
            client: reqwest::Client::new(),
            base,
            mapping: parse_mapping(MAPPING, "rest")?,
            state: tempfile::tempdir()?,
        })
    }

    /// The json-server (for its URL, or to stop and start it).
    pub fn server(&mut self) -> &mut JsonServer {
        &mut self.server
    }

    /// The connector's configuration: polls every 50 ms, lists every id
    /// each second (how deletes are found).
    pub fn config(&self) -> HttpConfig {
        let mut cfg = HttpConfig::new(self.server.url(), COLLECTION);
        cfg.poll_interval_ms = 50;
        cfg.full_list_interval_secs = 1;
        cfg.request_timeout_ms = 5_000;
        cfg.known_ids_file = Some(self.state.path().join("known_customers.json"));
        cfg
    }

    fn url(&self, id: &str) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.push(id);
        }
        url
    }

    /// POSTs a customer under a key of its own; returns the key.
    async fn post(client: &reqwest::Client, base: &Url, row: Row) -> anyhow::Result<String> {
        let id = hostile_key("r", 40);
        let mut body: serde_json::Map<String, Value> = row.into_iter().collect();
        body.insert("id".into(), Value::String(id.clone()));
        client
            .post(base.clone())
            .json(&body)
            .send()
            .await?
            .error_for_status()
            .with_context(|| format!("POST of customer {id}"))?;
        Ok(id)
    }

    fn record_fields(&self, record: Value) -> anyhow::Result<(String, Fields)> {
        let Value::Object(map) = record else {
            anyhow::bail!("a customer that is not a JSON object");
        };
        let id = match map.get("id") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => anyhow::bail!("a customer without an id"),
        };
        let row: Row = map.into_iter().collect();
        let fields = to_fields(&self.mapping, &id, &row)?;
        Ok((id, fields))
    }
}

impl SystemUnderTest for RestApi {
    type Connector = HttpConfig;

    fn name(&self) -> &str {
        &self.name
    }

    fn connector(&self) -> HttpConfig {
        self.config()
    }

    fn mapping(&self) -> String {
        MAPPING.to_string()
    }

    async fn insert(&mut self, fields: &Fields) -> anyhow::Result<String> {
        let mut ids = self.insert_many(std::slice::from_ref(fields)).await?;
        ids.pop().context("no id returned")
    }

    async fn set_city(&mut self, record_id: &str, city: &str) -> anyhow::Result<()> {
        let fields = Fields::from([("city".to_string(), Value::String(city.to_string()))]);
        self.set_fields(record_id, &fields).await
    }

    async fn delete(&mut self, record_id: &str) -> anyhow::Result<()> {
        self.client
            .delete(self.url(record_id))
            .send()
            .await?
            .error_for_status()
            .with_context(|| format!("DELETE of customer {record_id}"))?;
        Ok(())
    }

    async fn read(&mut self, record_id: &str) -> anyhow::Result<Option<Fields>> {
        let response = self.client.get(self.url(record_id)).send().await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let record: Value = response
            .error_for_status()
            .with_context(|| format!("GET of customer {record_id}"))?
            .json()
            .await?;
        Ok(Some(self.record_fields(record)?.1))
    }
}

impl UserEdits for RestApi {
    /// json-server has no batch call: one POST each, a few in flight.
    async fn insert_many(&mut self, customers: &[Fields]) -> anyhow::Result<Vec<String>> {
        let rows = customers
            .iter()
            .map(|f| to_row(&self.mapping, f))
            .collect::<anyhow::Result<Vec<Row>>>()?;
        let (client, base) = (&self.client, &self.base);
        futures::stream::iter(rows)
            .map(|row| Self::post(client, base, row))
            .buffered(IN_FLIGHT)
            .try_collect()
            .await
    }

    async fn set_fields(&mut self, record_id: &str, fields: &Fields) -> anyhow::Result<()> {
        let row = to_row(&self.mapping, fields)?;
        let body: serde_json::Map<String, Value> = row.into_iter().collect();
        self.client
            .patch(self.url(record_id))
            .json(&body)
            .send()
            .await?
            .error_for_status()
            .with_context(|| format!("PATCH of customer {record_id}"))?;
        Ok(())
    }

    async fn read_all(&mut self) -> anyhow::Result<BTreeMap<String, Fields>> {
        let records: Vec<Value> = self
            .client
            .get(self.base.clone())
            .send()
            .await?
            .error_for_status()
            .context("GET of the customers")?
            .json()
            .await?;
        records.into_iter().map(|r| self.record_fields(r)).collect()
    }
}
