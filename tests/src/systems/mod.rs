//! Real business systems as the compliance scenario (and any test that
//! needs a system's users) sees them: each type here starts its server,
//! holds the connector to it, and makes a user's plain edits in the
//! system's own way (SQL as the product writes it, REST calls).
//!
//! - [`odoo::Odoo`]: PostgreSQL holding Odoo 17's `res_partner`, the
//!   PostgreSQL connector with the `odoo_res_partner` preset.
//! - [`suitecrm::SuiteCrm`]: MariaDB holding SuiteCRM 7's contacts and
//!   e-mail tables, the MySQL connector with the `suitecrm_contacts` preset.
//! - [`rest::RestApi`]: json-server 0.17.4 with a `customers` collection,
//!   the HTTP connector with a plain mapping ([`rest::MAPPING`]).
//!
//! Each implements [`SystemUnderTest`] and [`UserEdits`], the bulk and
//! any-field edits a test of many records needs.

pub mod odoo;
pub mod rest;
pub mod suitecrm;

use std::collections::BTreeMap;
use std::future::Future;

use anyhow::Context as _;

use mdhub_connectors::contract::Row;
use mdhub_connectors::mapping::Mapping;
use mdhub_schema::Model;
use serde_json::Value;

use crate::compliance::{Fields, SystemUnderTest};

/// Edits beyond the compliance scenario's: many records at once, any
/// field, and the whole table read back.
pub trait UserEdits: SystemUnderTest {
    /// Inserts every customer in one statement (or batch) and returns
    /// their keys, in the order given.
    fn insert_many(
        &mut self,
        customers: &[Fields],
    ) -> impl Future<Output = anyhow::Result<Vec<String>>> + Send;
    /// Sets the given canonical fields of a customer (a `null` clears
    /// one); the other fields stay.
    fn set_fields(
        &mut self,
        record_id: &str,
        fields: &Fields,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Every customer the system holds (not deleted or archived) by key,
    /// in canonical fields, in one query.
    fn read_all(&mut self)
        -> impl Future<Output = anyhow::Result<BTreeMap<String, Fields>>> + Send;
}

/// Parses a mapping file against the default customer model.
pub(crate) fn parse_mapping(text: &str, name: &str) -> anyhow::Result<Mapping> {
    Ok(Mapping::parse(text, name, &Model::default_customer())?)
}

/// The columns a mapping writes for canonical fields.
pub(crate) fn to_row(mapping: &Mapping, fields: &Fields) -> anyhow::Result<Row> {
    mapping
        .to_system(fields)
        .map_err(|e| anyhow::anyhow!("mapping canonical fields to columns: {e:?}"))
}

/// A row read from the system in canonical fields; fields the row holds
/// no value for (SQL NULL, JSON null) are left out, so that two reads
/// compare equal whatever the system's empty cells are.
pub(crate) fn to_fields(mapping: &Mapping, record_id: &str, row: &Row) -> anyhow::Result<Fields> {
    let mut fields = mapping
        .to_canonical(row)
        .map_err(|e| anyhow::anyhow!("record {record_id} does not map: {e:?}"))?;
    fields.retain(|_, v| !v.is_null());
    Ok(fields)
}

/// A JSON value as the text SQL receives for it (bound as a text
/// parameter and converted by the server on assignment); `None` for null.
pub(crate) fn sql_text(value: &Value, true_text: &str, false_text: &str) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(true) => Some(true_text.to_string()),
        Value::Bool(false) => Some(false_text.to_string()),
        other => Some(other.to_string()),
    }
}

/// The union of the columns of `rows`, in name order.
pub(crate) fn all_columns<'a>(rows: impl IntoIterator<Item = &'a Row>) -> Vec<String> {
    let mut columns: Vec<String> = rows
        .into_iter()
        .flat_map(|r| r.keys().cloned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    columns.sort();
    columns
}

/// A key that hurts, unique for this process: quotes, unicode, `%`, `/`
/// and a space, `max_chars` characters at most.
pub(crate) fn hostile_key(prefix: &str, max_chars: usize) -> String {
    let unique = uuid::Uuid::now_v7().simple().to_string();
    let head = format!("{prefix}'ü\" %/");
    let room = max_chars.saturating_sub(head.chars().count());
    // The end of a v7 UUID is its random part.
    format!("{head}{}", &unique[unique.len() - room.min(unique.len())..])
}

/// Checks a system's [`UserEdits`] against itself: `n` customers inserted
/// in one go (hostile values, some without a city) read back whole, one
/// edited through `set_fields`, one deleted. Returns how long the insert
/// took.
pub async fn check_user_edits<S: UserEdits>(
    sys: &mut S,
    n: usize,
) -> anyhow::Result<std::time::Duration> {
    let customers: Vec<Fields> = (0..n)
        .map(|i| {
            let mut f = Fields::new();
            f.insert("given_name".into(), Value::from(format!("Zoë \"{i}\"")));
            f.insert(
                "family_name".into(),
                Value::from(format!("O'Lee-{i} 50%/x")),
            );
            f.insert(
                "email".into(),
                Value::from(format!("o'lee.{i}@example.com")),
            );
            if i % 3 != 0 {
                f.insert("city".into(), Value::from(format!("Köln `{i}`\\")));
            }
            f
        })
        .collect();
    let start = std::time::Instant::now();
    let ids = sys.insert_many(&customers).await?;
    let took = start.elapsed();
    anyhow::ensure!(ids.len() == n, "{} keys for {n} customers", ids.len());
    let all = sys.read_all().await?;
    anyhow::ensure!(all.len() == n, "read_all holds {} of {n}", all.len());
    for (id, sent) in ids.iter().zip(&customers) {
        let held = all.get(id).with_context(|| format!("{id} not read back"))?;
        for field in ["email", "city"] {
            anyhow::ensure!(
                held.get(field) == sent.get(field),
                "{id}: {field} sent {:?}, held {:?}",
                sent.get(field),
                held.get(field)
            );
        }
    }
    let edit = Fields::from([
        ("email".to_string(), Value::from("new.\"one\"@example.com")),
        ("city".to_string(), Value::from("Zürich")),
    ]);
    sys.set_fields(&ids[0], &edit).await?;
    let held = sys.read(&ids[0]).await?.context("the edited customer")?;
    for (field, value) in &edit {
        anyhow::ensure!(held.get(field) == Some(value), "{field} not set: {held:?}");
    }
    sys.delete(&ids[1]).await?;
    let all = sys.read_all().await?;
    anyhow::ensure!(
        all.len() == n - 1 && !all.contains_key(&ids[1]),
        "the deleted customer is still read"
    );
    anyhow::ensure!(sys.read(&ids[1]).await?.is_none(), "deleted, yet read");
    Ok(took)
}
