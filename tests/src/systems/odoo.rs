//! Odoo 17's contacts: a throwaway PostgreSQL holding `res_partner`
//! (tests/data/odoo_res_partner.sql), the PostgreSQL connector with the
//! `odoo_res_partner` preset, archiving through `active`. A user's edits
//! are SQL on `res_partner` as Odoo's ORM writes it: `write_date` set to
//! now (UTC) on every write, archived rather than deleted.

use std::collections::BTreeMap;

use anyhow::Context as _;
use mdhub_connectors::contract::Row;
use mdhub_connectors::mapping::Mapping;
use mdhub_connectors::postgres::{PostgresConfig, PostgresConnector};
use mdhub_connectors::presets;
use serde_json::Value;
use tokio_postgres::{Client, NoTls};

use super::{all_columns, parse_mapping, sql_text, to_fields, to_row, UserEdits};
use crate::compliance::{Fields, SystemUnderTest};
use crate::postgres::Postgres;

/// The preset the connector maps with.
pub const PRESET: &str = "odoo_res_partner";

const SCHEMA_SQL: &str = include_str!("../../data/odoo_res_partner.sql");

/// Odoo's clock: UTC without a zone, as it stores every datetime.
const NOW: &str = "(now() AT TIME ZONE 'UTC')";

/// A running Odoo database and a SQL session of its user.
pub struct Odoo {
    name: String,
    pg: Postgres,
    client: Client,
    mapping: Mapping,
}

impl Odoo {
    /// Starts PostgreSQL with Odoo's tables; `name` is the system's name
    /// in the hub (it also names the slot, publication and origin).
    pub async fn start(name: &str) -> anyhow::Result<Self> {
        let pg = Postgres::start()?;
        pg.psql(SCHEMA_SQL).context("creating Odoo's tables")?;
        let (client, connection) = tokio_postgres::connect(&pg.url(), NoTls)
            .await
            .context("connecting to PostgreSQL")?;
        tokio::spawn(async move {
            // Ends with the client; an error here shows in the next query.
            let _ = connection.await;
        });
        let text = presets::mapping(PRESET).context("the odoo preset")?;
        Ok(Odoo {
            name: name.to_string(),
            pg,
            client,
            mapping: parse_mapping(text, PRESET)?,
        })
    }

    /// The PostgreSQL server (for its URL or psql).
    pub fn server(&self) -> &Postgres {
        &self.pg
    }

    /// The connector's configuration.
    pub fn config(&self) -> PostgresConfig {
        PostgresConfig {
            url: Some(self.pg.url()),
            url_env: None,
            schema: "public".into(),
            table: "res_partner".into(),
            key: "id".into(),
            slot: None,
            publication: None,
            archive_column: Some("active".into()),
            modified_column: Some("write_date".into()),
            origin: None,
        }
    }

    /// The columns for canonical fields. Odoo keeps one name: a given and
    /// family name with no full name become `name`, as a user types it.
    fn row(&self, fields: &Fields) -> anyhow::Result<Row> {
        let mut fields = fields.clone();
        if !fields.contains_key("full_name") {
            let parts: Vec<&str> = ["given_name", "family_name"]
                .iter()
                .filter_map(|f| fields.get(*f).and_then(Value::as_str))
                .collect();
            if !parts.is_empty() {
                let full = parts.join(" ");
                fields.insert("full_name".into(), Value::String(full));
            }
        }
        to_row(&self.mapping, &fields)
    }

    fn key(record_id: &str) -> anyhow::Result<i32> {
        record_id
            .parse()
            .with_context(|| format!("res_partner key {record_id:?} is not an integer"))
    }

    async fn select(
        &self,
        filter: &str,
        key: Option<i32>,
    ) -> anyhow::Result<BTreeMap<String, Fields>> {
        let sql =
            format!("SELECT id::text, to_jsonb(p)::text FROM res_partner p WHERE active {filter}");
        let rows = match key {
            Some(k) => self.client.query(&sql, &[&k]).await,
            None => self.client.query(&sql, &[]).await,
        }
        .context("reading res_partner")?;
        let mut out = BTreeMap::new();
        for r in rows {
            let id: String = r.get(0);
            let json: String = r.get(1);
            let row: Row =
                serde_json::from_str(&json).with_context(|| format!("res_partner {id} as JSON"))?;
            let fields = to_fields(&self.mapping, &id, &row)?;
            out.insert(id, fields);
        }
        Ok(out)
    }
}

impl Drop for Odoo {
    fn drop(&mut self) {
        // A connector still streaming (a failed test) would hold up a fast
        // shutdown; the database is thrown away anyway.
        let _ = self.pg.stop_immediate();
    }
}

impl SystemUnderTest for Odoo {
    type Connector = PostgresConnector;

    fn name(&self) -> &str {
        &self.name
    }

    fn connector(&self) -> PostgresConnector {
        PostgresConnector::new(&self.name, &self.config()).expect("a valid configuration")
    }

    fn mapping(&self) -> String {
        presets::mapping(PRESET).unwrap_or_default().to_string()
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
        // Odoo's users archive a contact (its "Archive" action).
        let n = self
            .client
            .execute(
                &format!("UPDATE res_partner SET active = false, write_date = {NOW} WHERE id = $1"),
                &[&Self::key(record_id)?],
            )
            .await
            .with_context(|| format!("archiving res_partner {record_id}"))?;
        anyhow::ensure!(n == 1, "no res_partner {record_id}");
        Ok(())
    }

    async fn read(&mut self, record_id: &str) -> anyhow::Result<Option<Fields>> {
        let key = Self::key(record_id)?;
        Ok(self
            .select("AND id = $1", Some(key))
            .await?
            .remove(record_id))
    }
}

impl UserEdits for Odoo {
    async fn insert_many(&mut self, customers: &[Fields]) -> anyhow::Result<Vec<String>> {
        if customers.is_empty() {
            return Ok(Vec::new());
        }
        let rows = customers
            .iter()
            .map(|f| self.row(f))
            .collect::<anyhow::Result<Vec<Row>>>()?;
        // Keys first, so that each row's key is known whatever order the
        // insert goes in.
        let ids: Vec<i32> = self
            .client
            .query(
                "SELECT nextval('res_partner_id_seq')::int4 FROM generate_series(1, $1)",
                &[&(rows.len() as i32)],
            )
            .await
            .context("taking res_partner ids")?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let columns = all_columns(&rows);
        // One array per column, unnested into rows: one statement for any
        // number of rows. Text converts to each column's type on assignment.
        let arrays: Vec<Vec<Option<String>>> = columns
            .iter()
            .map(|c| {
                rows.iter()
                    .map(|r| r.get(c).and_then(|v| sql_text(v, "true", "false")))
                    .collect()
            })
            .collect();
        let names: Vec<String> = (0..columns.len()).map(|i| format!("c{i}")).collect();
        let sql = format!(
            "INSERT INTO res_partner (id, {cols}, complete_name, active, type, create_date, \
             write_date) SELECT u.id, {vals}, u.{name_col}, true, 'contact', {NOW}, {NOW} \
             FROM unnest($1::int4[]{arrays}) AS u(id, {names})",
            cols = columns
                .iter()
                .map(|c| quote_ident(c))
                .collect::<Vec<_>>()
                .join(", "),
            vals = names
                .iter()
                .map(|n| format!("u.{n}"))
                .collect::<Vec<_>>()
                .join(", "),
            // complete_name follows name, as Odoo computes it for a person.
            name_col = columns
                .iter()
                .position(|c| c == "name")
                .map_or("id::text".to_string(), |i| format!("c{i}")),
            arrays = (0..columns.len())
                .map(|i| format!(", ${}::text[]", i + 2))
                .collect::<String>(),
            names = names.join(", "),
        );
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&ids];
        params.extend(
            arrays
                .iter()
                .map(|a| a as &(dyn tokio_postgres::types::ToSql + Sync)),
        );
        self.client
            .execute(&sql, &params)
            .await
            .context("inserting into res_partner")?;
        Ok(ids.iter().map(i32::to_string).collect())
    }

    async fn set_fields(&mut self, record_id: &str, fields: &Fields) -> anyhow::Result<()> {
        let row = self.row(fields)?;
        let key = Self::key(record_id)?;
        let values: Vec<Option<String>> =
            row.values().map(|v| sql_text(v, "true", "false")).collect();
        let mut sets: Vec<String> = row
            .keys()
            .enumerate()
            .map(|(i, c)| format!("{} = ${}::text", quote_ident(c), i + 2))
            .collect();
        sets.push(format!("write_date = {NOW}"));
        let sql = format!("UPDATE res_partner SET {} WHERE id = $1", sets.join(", "));
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&key];
        params.extend(
            values
                .iter()
                .map(|v| v as &(dyn tokio_postgres::types::ToSql + Sync)),
        );
        let n = self
            .client
            .execute(&sql, &params)
            .await
            .with_context(|| format!("updating res_partner {record_id}"))?;
        anyhow::ensure!(n == 1, "no res_partner {record_id}");
        Ok(())
    }

    async fn read_all(&mut self) -> anyhow::Result<BTreeMap<String, Fields>> {
        self.select("", None).await
    }
}

/// An identifier quoted for SQL.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
