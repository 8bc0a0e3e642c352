//! SuiteCRM's primary e-mail relation: a contact's primary address is the
//! `email_addresses.email_address` of its `email_addr_bean_rel` row with
//! `bean_module = 'Contacts'`, `primary_address = 1` and `deleted = 0` (and
//! the address row not deleted). It is read and written as the virtual
//! column `email1`. When SuiteCRM holds two primary relations for one
//! contact (it can), the most recently modified one counts, on reads and
//! writes alike.

use std::collections::{BTreeMap, BTreeSet};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row as SqlRow, Value as Sql};

use super::schema::{ident, text};

/// The relation table.
pub(crate) const REL_TABLE: &str = "email_addr_bean_rel";
/// The address table.
pub(crate) const ADDRESS_TABLE: &str = "email_addresses";
/// The bean module of contacts.
pub(crate) const MODULE: &str = "Contacts";

/// Ids per `IN (...)` list.
const CHUNK: usize = 500;

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// The primary address of each of `contacts` that has one.
pub(crate) async fn primary_addresses(
    conn: &mut Conn,
    database: &str,
    contacts: &BTreeSet<String>,
) -> Result<BTreeMap<String, String>, mysql_async::Error> {
    let mut found = BTreeMap::new();
    let ids: Vec<&String> = contacts.iter().collect();
    for chunk in ids.chunks(CHUNK) {
        let sql = format!(
            "SELECT r.bean_id, e.email_address FROM {db}.{rel} r \
             JOIN {db}.{addr} e ON e.id = r.email_address_id \
             WHERE r.bean_module = ? AND r.primary_address = 1 AND r.deleted = 0 \
             AND e.deleted = 0 AND r.bean_id IN ({}) \
             ORDER BY r.bean_id, r.date_modified DESC, r.id",
            placeholders(chunk.len()),
            db = ident(database),
            rel = ident(REL_TABLE),
            addr = ident(ADDRESS_TABLE),
        );
        let mut params: Vec<Sql> = vec![MODULE.into()];
        params.extend(chunk.iter().map(|id| Sql::from(id.as_str())));
        let rows: Vec<SqlRow> = conn.exec(sql, params).await?;
        for row in rows {
            if let (Some(bean), Some(address)) = (text(&row, 0), text(&row, 1)) {
                // Rows come newest first per contact: keep the first.
                found.entry(bean).or_insert(address);
            }
        }
    }
    Ok(found)
}

/// The contacts related to any of the address rows `addresses` (deleted
/// relations too: what matters is whose primary address may have changed).
pub(crate) async fn contacts_of_addresses(
    conn: &mut Conn,
    database: &str,
    addresses: &BTreeSet<String>,
) -> Result<BTreeSet<String>, mysql_async::Error> {
    let mut found = BTreeSet::new();
    let ids: Vec<&String> = addresses.iter().collect();
    for chunk in ids.chunks(CHUNK) {
        let sql = format!(
            "SELECT DISTINCT bean_id FROM {}.{} WHERE bean_module = ? AND email_address_id IN ({})",
            ident(database),
            ident(REL_TABLE),
            placeholders(chunk.len()),
        );
        let mut params: Vec<Sql> = vec![MODULE.into()];
        params.extend(chunk.iter().map(|id| Sql::from(id.as_str())));
        let rows: Vec<SqlRow> = conn.exec(sql, params).await?;
        found.extend(rows.iter().filter_map(|r| text(r, 0)));
    }
    Ok(found)
}

/// Creates a primary address for each of `new` (contact, address), which
/// have none: the address rows and their relations in one `INSERT` each.
/// Runs inside the caller's transaction.
pub(crate) async fn insert_primaries(
    conn: &mut Conn,
    database: &str,
    new: &[(&str, &str)],
) -> Result<(), mysql_async::Error> {
    if new.is_empty() {
        return Ok(());
    }
    let db = ident(database);
    let (rel, addr) = (ident(REL_TABLE), ident(ADDRESS_TABLE));
    let address_ids: Vec<String> = new
        .iter()
        .map(|_| uuid::Uuid::now_v7().to_string())
        .collect();
    let rows = vec!["(?, ?, UPPER(?), 0, 0, UTC_TIMESTAMP(), UTC_TIMESTAMP(), 0)"; new.len()];
    let mut params: Vec<Sql> = Vec::with_capacity(new.len() * 3);
    for ((_, address), id) in new.iter().zip(&address_ids) {
        params.extend([id.as_str().into(), (*address).into(), (*address).into()]);
    }
    conn.exec_drop(
        format!(
            "INSERT INTO {db}.{addr} (id, email_address, email_address_caps, \
             invalid_email, opt_out, date_created, date_modified, deleted) VALUES {}",
            rows.join(", ")
        ),
        params,
    )
    .await?;
    let rows = vec!["(?, ?, ?, ?, 1, 0, UTC_TIMESTAMP(), UTC_TIMESTAMP(), 0)"; new.len()];
    let mut params: Vec<Sql> = Vec::with_capacity(new.len() * 4);
    for ((contact, _), id) in new.iter().zip(&address_ids) {
        params.extend([
            uuid::Uuid::now_v7().to_string().into(),
            id.as_str().into(),
            (*contact).into(),
            MODULE.into(),
        ]);
    }
    conn.exec_drop(
        format!(
            "INSERT INTO {db}.{rel} (id, email_address_id, bean_id, bean_module, \
             primary_address, reply_to_address, date_created, date_modified, deleted) VALUES {}",
            rows.join(", ")
        ),
        params,
    )
    .await
}

/// Sets `contact`'s primary address: updates the address row of its primary
/// relation, or creates an address row and a primary relation when it has
/// none; `None` removes the primary relation (SuiteCRM's soft delete).
/// Runs inside the caller's transaction.
pub(crate) async fn write_primary(
    conn: &mut Conn,
    database: &str,
    contact: &str,
    address: Option<&str>,
) -> Result<(), mysql_async::Error> {
    let db = ident(database);
    let (rel, addr) = (ident(REL_TABLE), ident(ADDRESS_TABLE));
    let current: Option<(String, String)> = conn
        .exec::<SqlRow, _, _>(
            format!(
                "SELECT r.id, r.email_address_id FROM {db}.{rel} r \
                 JOIN {db}.{addr} e ON e.id = r.email_address_id \
                 WHERE r.bean_module = ? AND r.primary_address = 1 AND r.deleted = 0 \
                 AND e.deleted = 0 AND r.bean_id = ? \
                 ORDER BY r.date_modified DESC, r.id LIMIT 1 FOR UPDATE"
            ),
            (MODULE, contact),
        )
        .await?
        .first()
        .and_then(|r| Some((text(r, 0)?, text(r, 1)?)));
    match (current, address) {
        (Some((_, address_id)), Some(address)) => {
            conn.exec_drop(
                format!(
                    "UPDATE {db}.{addr} SET email_address = ?, email_address_caps = UPPER(?), \
                     date_modified = UTC_TIMESTAMP() WHERE id = ?"
                ),
                (address, address, address_id),
            )
            .await
        }
        (None, Some(address)) => {
            let address_id = uuid::Uuid::now_v7().to_string();
            conn.exec_drop(
                format!(
                    "INSERT INTO {db}.{addr} (id, email_address, email_address_caps, \
                     invalid_email, opt_out, date_created, date_modified, deleted) \
                     VALUES (?, ?, UPPER(?), 0, 0, UTC_TIMESTAMP(), UTC_TIMESTAMP(), 0)"
                ),
                (&address_id, address, address),
            )
            .await?;
            conn.exec_drop(
                format!(
                    "INSERT INTO {db}.{rel} (id, email_address_id, bean_id, bean_module, \
                     primary_address, reply_to_address, date_created, date_modified, deleted) \
                     VALUES (?, ?, ?, ?, 1, 0, UTC_TIMESTAMP(), UTC_TIMESTAMP(), 0)"
                ),
                (
                    uuid::Uuid::now_v7().to_string(),
                    &address_id,
                    contact,
                    MODULE,
                ),
            )
            .await
        }
        (Some((rel_id, _)), None) => {
            conn.exec_drop(
                format!(
                    "UPDATE {db}.{rel} SET deleted = 1, date_modified = UTC_TIMESTAMP() \
                     WHERE id = ?"
                ),
                (rel_id,),
            )
            .await
        }
        (None, None) => Ok(()),
    }
}
