//! SuiteCRM 7's contacts: a throwaway MariaDB holding `contacts`,
//! `email_addresses` and `email_addr_bean_rel` (tests/data/suitecrm.sql),
//! the MySQL connector with `suitecrm_email = true`, `archive_column =
//! "deleted"` and the `suitecrm_contacts` preset. A user's edits are SQL as
//! SuiteCRM writes it: `date_modified` in UTC on every save, deletes as
//! `deleted = 1`, the primary e-mail address as an `email_addresses` row
//! related to the contact through a primary `email_addr_bean_rel` row.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use mdhub_connectors::contract::Row;
use mdhub_connectors::mapping::Mapping;
use mdhub_connectors::mysql::{MysqlConfig, EMAIL_COLUMN};
use mdhub_connectors::presets;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, TxOpts, Value as Sql};
use serde_json::Value;
use uuid::Uuid;

use super::{all_columns, hostile_key, parse_mapping, sql_text, to_fields, to_row, UserEdits};
use crate::compliance::{Fields, SystemUnderTest};
use crate::mariadb::MariaDb;

/// The preset the connector maps with.
pub const PRESET: &str = "suitecrm_contacts";

/// The connector's replica id on the binary log (the server's is 1).
pub const REPLICA_ID: u32 = 4301;

/// Parameters per statement: MariaDB takes at most 65,535.
const MAX_PARAMS: usize = 60_000;

/// The user SuiteCRM's records are saved by (its admin's id).
const USER_ID: &str = "1";

/// A contact's primary e-mail address, as SuiteCRM reads it: the newest
/// live primary relation of the contact to a live address.
const PRIMARY_EMAIL: &str = "(SELECT e.email_address FROM email_addr_bean_rel r \
     JOIN email_addresses e ON e.id = r.email_address_id \
     WHERE r.bean_id = c.id AND r.bean_module = 'Contacts' AND r.primary_address = 1 \
     AND r.deleted = 0 AND e.deleted = 0 ORDER BY r.date_modified DESC, r.id LIMIT 1)";

/// A running SuiteCRM database and a SQL session of SuiteCRM.
pub struct SuiteCrm {
    name: String,
    db: MariaDb,
    conn: Conn,
    mapping: Mapping,
}

impl SuiteCrm {
    /// Starts MariaDB with SuiteCRM's tables; `name` is the system's name
    /// in the hub.
    pub async fn start(name: &str) -> anyhow::Result<Self> {
        let db = MariaDb::start()?;
        db.run_file(&Path::new(env!("CARGO_MANIFEST_DIR")).join("data/suitecrm.sql"))
            .context("creating SuiteCRM's tables")?;
        let conn = Conn::new(Opts::from_url(&db.url())?)
            .await
            .context("connecting to MariaDB")?;
        let text = presets::mapping(PRESET).context("the suitecrm preset")?;
        Ok(SuiteCrm {
            name: name.to_string(),
            db,
            conn,
            mapping: parse_mapping(text, PRESET)?,
        })
    }

    /// The MariaDB server (for its URL or the mariadb client).
    pub fn server(&self) -> &MariaDb {
        &self.db
    }

    /// The connector's configuration.
    pub fn config(&self) -> MysqlConfig {
        MysqlConfig {
            url: Some(self.db.url()),
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

    /// The contact's columns and, apart, its primary e-mail address
    /// (`Some(None)`: cleared).
    fn split(&self, fields: &Fields) -> anyhow::Result<(Row, Option<Option<String>>)> {
        let mut row = to_row(&self.mapping, fields)?;
        let email = row.remove(EMAIL_COLUMN).map(|v| sql_text(&v, "1", "0"));
        Ok((row, email))
    }

    async fn select(
        &mut self,
        filter: &str,
        params: Vec<Sql>,
    ) -> anyhow::Result<BTreeMap<String, Fields>> {
        let columns: Vec<String> = self
            .mapping
            .columns()
            .into_iter()
            .filter(|c| *c != EMAIL_COLUMN)
            .map(str::to_string)
            .collect();
        // Every column as text: the mapping reads dates and numbers from it.
        let select: Vec<String> = columns
            .iter()
            .map(|c| format!("CAST({} AS CHAR)", ident(c)))
            .collect();
        let sql = format!(
            "SELECT c.id, {PRIMARY_EMAIL}, {} FROM contacts c WHERE c.deleted = 0 {filter}",
            select.join(", ")
        );
        let rows: Vec<mysql_async::Row> = self
            .conn
            .exec(sql, params)
            .await
            .context("reading contacts")?;
        let mut out = BTreeMap::new();
        for r in rows {
            let id: String = r
                .get_opt(0)
                .and_then(Result::ok)
                .context("a contact without a text id")?;
            let mut row = Row::new();
            let email: Option<String> = r.get_opt(1).and_then(Result::ok).flatten();
            row.insert(
                EMAIL_COLUMN.into(),
                email.map_or(Value::Null, Value::String),
            );
            for (i, c) in columns.iter().enumerate() {
                let v: Option<String> = r.get_opt(i + 2).and_then(Result::ok).flatten();
                row.insert(c.clone(), v.map_or(Value::Null, Value::String));
            }
            let fields = to_fields(&self.mapping, &id, &row)?;
            out.insert(id, fields);
        }
        Ok(out)
    }
}

/// A MariaDB identifier, quoted.
fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

fn text(value: Option<String>) -> Sql {
    value.map_or(Sql::NULL, Sql::from)
}

impl SystemUnderTest for SuiteCrm {
    type Connector = MysqlConfig;

    fn name(&self) -> &str {
        &self.name
    }

    fn connector(&self) -> MysqlConfig {
        self.config()
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
        // SuiteCRM's mark_deleted: the row stays, flagged.
        let sql = "UPDATE contacts SET deleted = 1, date_modified = UTC_TIMESTAMP(), \
                   modified_user_id = ? WHERE id = ?";
        self.conn
            .exec_drop(sql, (USER_ID, record_id))
            .await
            .with_context(|| format!("deleting contact {record_id}"))?;
        anyhow::ensure!(self.conn.affected_rows() == 1, "no contact {record_id}");
        Ok(())
    }

    async fn read(&mut self, record_id: &str) -> anyhow::Result<Option<Fields>> {
        Ok(self
            .select("AND c.id = ?", vec![Sql::from(record_id)])
            .await?
            .remove(record_id))
    }
}

impl UserEdits for SuiteCrm {
    async fn insert_many(&mut self, customers: &[Fields]) -> anyhow::Result<Vec<String>> {
        let mut rows = Vec::new();
        let mut emails = Vec::new();
        let mut ids = Vec::new();
        for fields in customers {
            let (row, email) = self.split(fields)?;
            rows.push(row);
            emails.push(email.flatten());
            // char(36): the key fits SuiteCRM's id column.
            ids.push(hostile_key("c", 36));
        }
        let columns = all_columns(&rows);
        let mut tx = self.conn.start_transaction(TxOpts::default()).await?;
        let per_row = columns.len() + 1;
        let chunk = (MAX_PARAMS / per_row).max(1);
        for (n, part) in rows.chunks(chunk).enumerate() {
            let one = format!(
                "(?{}, UTC_TIMESTAMP(), UTC_TIMESTAMP(), 0, '{USER_ID}', '{USER_ID}')",
                ", ?".repeat(columns.len())
            );
            let sql =
                format!(
                "INSERT INTO contacts (id{}, date_entered, date_modified, deleted, created_by, \
                 modified_user_id) VALUES {}",
                columns.iter().map(|c| format!(", {}", ident(c))).collect::<String>(),
                vec![one; part.len()].join(", ")
            );
            let mut params = Vec::with_capacity(part.len() * per_row);
            for (i, row) in part.iter().enumerate() {
                params.push(Sql::from(ids[n * chunk + i].as_str()));
                params.extend(
                    columns
                        .iter()
                        .map(|c| text(row.get(c).and_then(|v| sql_text(v, "1", "0")))),
                );
            }
            tx.exec_drop(sql, params)
                .await
                .context("inserting contacts")?;
        }
        // Each address its own row and a primary relation, as SuiteCRM
        // saves a new contact's e-mail.
        let with_email: Vec<(&String, &String)> = ids
            .iter()
            .zip(&emails)
            .filter_map(|(id, e)| Some((id, e.as_ref()?)))
            .collect();
        for part in with_email.chunks(MAX_PARAMS / 4) {
            let address_ids: Vec<String> = part
                .iter()
                .map(|_| Uuid::now_v7().hyphenated().to_string())
                .collect();
            let sql = format!(
                "INSERT INTO email_addresses (id, email_address, email_address_caps, \
                 date_created, date_modified, deleted) VALUES {}",
                vec!["(?, ?, UPPER(?), UTC_TIMESTAMP(), UTC_TIMESTAMP(), 0)"; part.len()]
                    .join(", ")
            );
            let params: Vec<Sql> = part
                .iter()
                .zip(&address_ids)
                .flat_map(|((_, email), aid)| {
                    [
                        Sql::from(aid.as_str()),
                        Sql::from(email.as_str()),
                        Sql::from(email.as_str()),
                    ]
                })
                .collect();
            tx.exec_drop(sql, params)
                .await
                .context("inserting email_addresses")?;
            let sql = format!(
                "INSERT INTO email_addr_bean_rel (id, email_address_id, bean_id, bean_module, \
                 primary_address, reply_to_address, date_created, date_modified, deleted) \
                 VALUES {}",
                vec![
                    "(?, ?, ?, 'Contacts', 1, 0, UTC_TIMESTAMP(), UTC_TIMESTAMP(), 0)";
                    part.len()
                ]
                .join(", ")
            );
            let params: Vec<Sql> = part
                .iter()
                .zip(&address_ids)
                .flat_map(|((contact, _), aid)| {
                    [
                        Sql::from(Uuid::now_v7().hyphenated().to_string()),
                        Sql::from(aid.as_str()),
                        Sql::from(contact.as_str()),
                    ]
                })
                .collect();
            tx.exec_drop(sql, params)
                .await
                .context("inserting email_addr_bean_rel")?;
        }
        tx.commit().await.context("committing the contacts")?;
        Ok(ids)
    }

    async fn set_fields(&mut self, record_id: &str, fields: &Fields) -> anyhow::Result<()> {
        let (row, email) = self.split(fields)?;
        let mut tx = self.conn.start_transaction(TxOpts::default()).await?;
        // (An UPDATE's affected rows leave out rows it left as they were.)
        let live: Option<u8> = tx
            .exec_first(
                "SELECT 1 FROM contacts WHERE id = ? AND deleted = 0 FOR UPDATE",
                (record_id,),
            )
            .await?;
        anyhow::ensure!(live.is_some(), "no contact {record_id}");
        // A save of the contact: its own columns and its change time.
        let sets: String = row.keys().map(|c| format!("{} = ?, ", ident(c))).collect();
        let sql = format!(
            "UPDATE contacts SET {sets}date_modified = UTC_TIMESTAMP(), modified_user_id = ? \
             WHERE id = ? AND deleted = 0"
        );
        let mut params: Vec<Sql> = row.values().map(|v| text(sql_text(v, "1", "0"))).collect();
        params.push(Sql::from(USER_ID));
        params.push(Sql::from(record_id));
        tx.exec_drop(sql, params)
            .await
            .with_context(|| format!("updating contact {record_id}"))?;
        if let Some(email) = email {
            // SuiteCRM's save of the e-mail widget: the address row (shared
            // by every bean with that address), the old primary relation
            // retired, a new one to the address.
            let mut address_id = None;
            if let Some(email) = &email {
                address_id = tx
                    .exec_first::<String, _, _>(
                        "SELECT id FROM email_addresses WHERE email_address_caps = UPPER(?) \
                         AND deleted = 0 ORDER BY id LIMIT 1",
                        (email.as_str(),),
                    )
                    .await?;
                if address_id.is_none() {
                    let id = Uuid::now_v7().hyphenated().to_string();
                    tx.exec_drop(
                        "INSERT INTO email_addresses (id, email_address, email_address_caps, \
                         date_created, date_modified, deleted) \
                         VALUES (?, ?, UPPER(?), UTC_TIMESTAMP(), UTC_TIMESTAMP(), 0)",
                        (id.as_str(), email.as_str(), email.as_str()),
                    )
                    .await?;
                    address_id = Some(id);
                }
            }
            let keep = address_id.clone().unwrap_or_default();
            tx.exec_drop(
                "UPDATE email_addr_bean_rel SET deleted = 1, date_modified = UTC_TIMESTAMP() \
                 WHERE bean_id = ? AND bean_module = 'Contacts' AND primary_address = 1 \
                 AND deleted = 0 AND email_address_id <> ?",
                (record_id, keep.as_str()),
            )
            .await?;
            if let Some(aid) = address_id {
                let live: Option<String> = tx
                    .exec_first(
                        "SELECT id FROM email_addr_bean_rel WHERE bean_id = ? \
                         AND bean_module = 'Contacts' AND primary_address = 1 AND deleted = 0 \
                         AND email_address_id = ? LIMIT 1",
                        (record_id, aid.as_str()),
                    )
                    .await?;
                if live.is_none() {
                    tx.exec_drop(
                        "INSERT INTO email_addr_bean_rel (id, email_address_id, bean_id, \
                         bean_module, primary_address, reply_to_address, date_created, \
                         date_modified, deleted) VALUES (?, ?, ?, 'Contacts', 1, 0, \
                         UTC_TIMESTAMP(), UTC_TIMESTAMP(), 0)",
                        (
                            Uuid::now_v7().hyphenated().to_string(),
                            aid.as_str(),
                            record_id,
                        ),
                    )
                    .await?;
                }
            }
        }
        tx.commit()
            .await
            .with_context(|| format!("committing contact {record_id}"))?;
        Ok(())
    }

    async fn read_all(&mut self) -> anyhow::Result<BTreeMap<String, Fields>> {
        self.select("", Vec::new()).await
    }
}
