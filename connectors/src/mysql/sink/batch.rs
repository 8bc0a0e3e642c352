//! The fast path of a write-back batch: the upserts of a batch in a few
//! statements instead of several per row. One query finds which records
//! exist, new rows go in as multi-row `INSERT`s, existing rows get one
//! `UPDATE` each, an e-mail address is written only where it changed, and
//! the committed images come back in one query. Any record the server
//! refuses sends the whole batch back to the row-by-row path, which rolls
//! back and reports that record alone.

use std::collections::{BTreeMap, BTreeSet};

use mysql_async::prelude::Queryable;
use mysql_async::{Row as SqlRow, Value as Sql};
use serde_json::Value as Json;

use super::{Failure, MysqlSink};
use crate::contract::{Applied, Row, Write, WriteOp};
use crate::mysql::config::EMAIL_COLUMN;
use crate::mysql::email;
use crate::mysql::rows;
use crate::mysql::schema::{ident, text};
use crate::mysql::value::Kind;

/// Ids per `IN (...)` list, rows per multi-row `INSERT`.
const CHUNK: usize = 200;

/// One upsert of the batch, its columns checked and converted.
struct Prepared {
    record_id: String,
    sets: Vec<(String, Sql)>,
    /// `Some(None)`: no primary address; `None`: not written.
    email: Option<Option<String>>,
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

impl MysqlSink {
    /// Whether the batch can take the fast path: upserts only, each record
    /// once, each with a key (given, or a new UUID for a text key).
    pub(super) fn batchable(&self, writes: &[Write]) -> bool {
        let text_key = self.table.key().kind == Kind::Text;
        let mut seen = BTreeSet::new();
        writes.len() > 1
            && writes.iter().all(|w| {
                matches!(w.op, WriteOp::Upsert(_))
                    && match &w.record_id {
                        Some(id) => seen.insert(id.as_str()),
                        None => text_key,
                    }
            })
    }

    /// Applies a batchable batch inside the caller's transaction. A
    /// `Failure::Record` means: roll back to before it and go row by row.
    pub(super) async fn apply_batch(&mut self, writes: &[Write]) -> Result<Vec<Applied>, Failure> {
        let mut prepared = Vec::with_capacity(writes.len());
        for w in writes {
            let WriteOp::Upsert(row) = &w.op else {
                return Err(Failure::Record("(batch)".into(), "not an upsert".into()));
            };
            let record_id = w
                .record_id
                .clone()
                .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
            prepared.push(self.prepare(record_id, row)?);
        }
        let ids: Vec<&str> = prepared.iter().map(|p| p.record_id.as_str()).collect();
        let existing = self.existing(&ids).await?;
        let (updates, inserts): (Vec<&Prepared>, Vec<&Prepared>) = prepared
            .iter()
            .partition(|p| existing.contains(&p.record_id));
        self.insert_rows(&inserts).await?;
        // MariaDB logs no row for an update to equal values.
        let mut unchanged = BTreeSet::new();
        for p in &updates {
            if !self.update_row(p).await? {
                unchanged.insert(p.record_id.clone());
            }
        }
        self.write_emails(&inserts, &updates).await?;

        let mut images = rows::fetch_many(&mut self.conn, &self.s, &self.table, &ids)
            .await
            .map_err(|e| Failure::Record("(batch)".into(), e.to_string()))?;
        prepared
            .into_iter()
            .map(|p| match images.remove(&p.record_id) {
                Some(image) => Ok(Applied {
                    unchanged: unchanged.contains(&p.record_id),
                    record_id: p.record_id,
                    image: Some(image),
                }),
                None => Err(Failure::Record(
                    p.record_id,
                    "row missing after the write".into(),
                )),
            })
            .collect()
    }

    fn prepare(&self, record_id: String, row: &Row) -> Result<Prepared, Failure> {
        let sets = self.assignments(&record_id, row)?;
        let email = match row.get(EMAIL_COLUMN).filter(|_| self.s.suitecrm_email) {
            None => None,
            Some(Json::Null) => Some(None),
            Some(Json::String(s)) => Some(Some(s.clone())),
            Some(_) => return Err(Failure::Record(record_id, "e-mail not text".into())),
        };
        Ok(Prepared {
            record_id,
            sets,
            email,
        })
    }

    async fn existing(&mut self, ids: &[&str]) -> Result<BTreeSet<String>, Failure> {
        let key = self.table.key().clone();
        let mut found = BTreeSet::new();
        for chunk in ids.chunks(CHUNK) {
            let params = chunk
                .iter()
                .map(|id| self.key(id))
                .collect::<Result<Vec<Sql>, _>>()?;
            let sql = format!(
                "SELECT {k} FROM {} WHERE {k} IN ({}) FOR UPDATE",
                self.target(),
                placeholders(chunk.len()),
                k = ident(&key.name)
            );
            let rows: Vec<SqlRow> = self
                .conn
                .exec(sql, params)
                .await
                .map_err(|e| self.record("(batch)", &e))?;
            for r in rows {
                let id = match r.as_ref(0) {
                    Some(Sql::Bytes(b)) => String::from_utf8_lossy(b).into_owned(),
                    Some(Sql::Int(i)) => i.to_string(),
                    Some(Sql::UInt(u)) => u.to_string(),
                    _ => text(&r, 0).unwrap_or_default(),
                };
                found.insert(id);
            }
        }
        Ok(found)
    }

    /// New rows, grouped by the columns they set, a multi-row `INSERT` per
    /// group and chunk.
    async fn insert_rows(&mut self, rows: &[&Prepared]) -> Result<(), Failure> {
        let mut groups: BTreeMap<Vec<&str>, Vec<&Prepared>> = BTreeMap::new();
        for p in rows {
            let cols = p.sets.iter().map(|(c, _)| c.as_str()).collect();
            groups.entry(cols).or_default().push(p);
        }
        let key = ident(&self.table.key().name);
        let modified = self.table.modified().map(|m| ident(&m.name));
        for (cols, members) in groups {
            let mut names = vec![key.clone()];
            names.extend(cols.iter().map(|c| ident(c)));
            let mut one = vec!["?"; cols.len() + 1].join(", ");
            if let Some(m) = &modified {
                names.push(m.clone());
                one.push_str(", UTC_TIMESTAMP()");
            }
            for chunk in members.chunks(CHUNK) {
                let values = vec![format!("({one})"); chunk.len()].join(", ");
                let sql = format!(
                    "INSERT INTO {} ({}) VALUES {values}",
                    self.target(),
                    names.join(", ")
                );
                let mut params = Vec::with_capacity(chunk.len() * (cols.len() + 1));
                for p in chunk {
                    params.push(self.key(&p.record_id)?);
                    params.extend(p.sets.iter().map(|(_, v)| v.clone()));
                }
                self.conn
                    .exec_drop(sql, params)
                    .await
                    .map_err(|e| self.record("(batch)", &e))?;
            }
        }
        Ok(())
    }

    /// Whether the row changed.
    async fn update_row(&mut self, p: &Prepared) -> Result<bool, Failure> {
        let mut parts: Vec<String> = p
            .sets
            .iter()
            .map(|(c, _)| format!("{} = ?", ident(c)))
            .collect();
        parts.extend(
            self.table
                .modified()
                .map(|m| format!("{} = UTC_TIMESTAMP()", ident(&m.name))),
        );
        if parts.is_empty() {
            return Ok(false);
        }
        let sql = format!(
            "UPDATE {} SET {} WHERE {} = ?",
            self.target(),
            parts.join(", "),
            ident(&self.table.key().name)
        );
        let mut params: Vec<Sql> = p.sets.iter().map(|(_, v)| v.clone()).collect();
        params.push(self.key(&p.record_id)?);
        self.conn
            .exec_drop(sql, params)
            .await
            .map_err(|e| self.record(&p.record_id, &e))?;
        Ok(self.conn.affected_rows() > 0)
    }

    /// Primary addresses: new contacts' in two multi-row `INSERT`s, existing
    /// contacts' only where the address changed.
    async fn write_emails(
        &mut self,
        inserts: &[&Prepared],
        updates: &[&Prepared],
    ) -> Result<(), Failure> {
        if !self.s.suitecrm_email {
            return Ok(());
        }
        let new: Vec<(&str, &str)> = inserts
            .iter()
            .filter_map(|p| Some((p.record_id.as_str(), p.email.as_ref()?.as_deref()?)))
            .collect();
        for chunk in new.chunks(CHUNK) {
            email::insert_primaries(&mut self.conn, &self.s.database, chunk)
                .await
                .map_err(|e| self.record("(batch)", &e))?;
        }
        let written: Vec<&Prepared> = updates
            .iter()
            .copied()
            .filter(|p| p.email.is_some())
            .collect();
        if written.is_empty() {
            return Ok(());
        }
        let ids: BTreeSet<String> = written.iter().map(|p| p.record_id.clone()).collect();
        let current = email::primary_addresses(&mut self.conn, &self.s.database, &ids)
            .await
            .map_err(|e| self.record("(batch)", &e))?;
        for p in written {
            let wanted = p.email.as_ref().and_then(|e| e.as_deref());
            if current.get(&p.record_id).map(String::as_str) == wanted {
                continue;
            }
            email::write_primary(&mut self.conn, &self.s.database, &p.record_id, wanted)
                .await
                .map_err(|e| self.record(&p.record_id, &e))?;
        }
        Ok(())
    }
}
