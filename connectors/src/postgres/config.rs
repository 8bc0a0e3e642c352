//! The `[postgres]` section of a connector's config file, and the settings
//! resolved from it once (URL from the environment, derived names).

use std::str::FromStr;

use serde::Deserialize;

use crate::contract::ConnectorError;

/// The PostgreSQL connector's configuration: one table of one database.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// libpq connection URL (`postgres://user@host:5432/db`). It must not
    /// carry a password: use `url_env` for a URL with one. Exactly one of
    /// `url` and `url_env` is set.
    #[serde(default)]
    pub url: Option<String>,
    /// Name of the environment variable holding the connection URL, so that
    /// passwords stay out of the file.
    #[serde(default)]
    pub url_env: Option<String>,
    /// Schema of the table (default `public`).
    #[serde(default = "default_schema")]
    pub schema: String,
    /// The captured and written table (`res_partner`).
    pub table: String,
    /// The primary key column, whose text is the record id (default `id`).
    #[serde(default = "default_key")]
    pub key: String,
    /// Logical replication slot (default `mdhub_<system>`). Letters, digits
    /// and `_` only, as PostgreSQL requires of slot names.
    #[serde(default)]
    pub slot: Option<String>,
    /// Publication the slot streams (default `mdhub_<system>`); created
    /// `FOR TABLE` the table when missing.
    #[serde(default)]
    pub publication: Option<String>,
    /// Boolean column that archives instead of deleting (Odoo's `active`):
    /// a row with `false` is captured as a delete, and a retire writes
    /// `false`. Without it a retire deletes the row.
    #[serde(default)]
    pub archive_column: Option<String>,
    /// Timestamp column with the row's last change (Odoo's `write_date`):
    /// the captured `observed_at`, and set to now (UTC) by every write.
    #[serde(default)]
    pub modified_column: Option<String>,
    /// Replication origin that marks the sink's own writes, so that their
    /// capture comes back as `own_write` (default `mdhub_<system>`).
    #[serde(default)]
    pub origin: Option<String>,
}

fn default_schema() -> String {
    "public".to_string()
}

fn default_key() -> String {
    "id".to_string()
}

/// The configuration checked and resolved: what the source and sink use.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Parsed connection settings (its `Debug` hides the password).
    pub pg: tokio_postgres::Config,
    pub schema: String,
    pub table: String,
    pub key: String,
    pub slot: String,
    pub publication: String,
    pub archive_column: Option<String>,
    pub modified_column: Option<String>,
    pub origin: String,
}

/// Session settings pinned on every connection (SQL and replication), so
/// that a value's text is the same whichever way it was read: pgoutput
/// renders values with the walsender's settings.
pub(crate) const SESSION_OPTIONS: &str = "-c DateStyle=ISO -c TimeZone=UTC \
     -c IntervalStyle=postgres -c extra_float_digits=1 -c bytea_output=hex \
     -c client_encoding=UTF8";

impl Settings {
    /// Checks `config` and resolves the URL; `system` names the defaults.
    pub fn resolve(system: &str, config: &PostgresConfig) -> Result<Self, ConnectorError> {
        let fatal = |m: String| ConnectorError::Fatal(format!("postgres connector {system}: {m}"));
        let url = match (&config.url, &config.url_env) {
            (Some(url), None) => {
                let parsed = parse_url(url).map_err(&fatal)?;
                if parsed.get_password().is_some() {
                    return Err(fatal(
                        "`url` carries a password; put the URL in an environment variable \
                         and name it in `url_env`"
                            .into(),
                    ));
                }
                parsed
            }
            (None, Some(var)) => {
                let url = std::env::var(var).map_err(|_| {
                    fatal(format!("environment variable {var} (url_env) is not set"))
                })?;
                parse_url(&url).map_err(|m| fatal(format!("{m} (from {var})")))?
            }
            _ => return Err(fatal("set exactly one of `url` and `url_env`".into())),
        };
        let mut pg = url;
        if pg.get_options().is_some() {
            return Err(fatal(
                "the URL sets `options`; the connector pins its own session settings".into(),
            ));
        }
        pg.options(SESSION_OPTIONS);
        pg.application_name(format!("mdhub-{system}"));
        if matches!(pg.get_ssl_mode(), tokio_postgres::config::SslMode::Require) {
            return Err(fatal(
                "sslmode=require is not supported yet; connect over a private network or a \
                 unix socket"
                    .into(),
            ));
        }
        let derived = derived_name(system);
        let slot = config.slot.clone().unwrap_or_else(|| derived.clone());
        let publication = config
            .publication
            .clone()
            .unwrap_or_else(|| derived.clone());
        let origin = config.origin.clone().unwrap_or_else(|| derived.clone());
        for (what, name) in [("slot", &slot), ("publication", &publication)] {
            if !is_simple_name(name) {
                return Err(fatal(format!(
                    "{what} name {name:?} must be 1 to 63 of a-z, 0-9 and _"
                )));
            }
        }
        for (what, name) in [
            ("schema", Some(&config.schema)),
            ("table", Some(&config.table)),
            ("key", Some(&config.key)),
            ("archive_column", config.archive_column.as_ref()),
            ("modified_column", config.modified_column.as_ref()),
            ("origin", Some(&origin)),
        ] {
            if let Some(name) = name {
                if name.is_empty() || name.len() > 63 || name.contains('\0') {
                    return Err(fatal(format!(
                        "{what} must be 1 to 63 bytes without NUL characters"
                    )));
                }
            }
        }
        Ok(Settings {
            pg,
            schema: config.schema.clone(),
            table: config.table.clone(),
            key: config.key.clone(),
            slot,
            publication,
            archive_column: config.archive_column.clone(),
            modified_column: config.modified_column.clone(),
            origin,
        })
    }

    /// `"schema"."table"`, quoted for SQL.
    pub fn qualified_table(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.table))
    }

    /// `schema.table` for messages.
    pub fn table_name(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }
}

fn parse_url(url: &str) -> Result<tokio_postgres::Config, String> {
    // The parser's message may quote the URL, password and all: not shown.
    tokio_postgres::Config::from_str(url)
        .map_err(|_| "the connection URL is not a valid libpq URL or key=value string".into())
}

/// `mdhub_<system>` with every character PostgreSQL refuses in slot names
/// replaced by `_`, cut to PostgreSQL's 63-byte limit.
fn derived_name(system: &str) -> String {
    let mut name: String = format!("mdhub_{system}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    name.truncate(63);
    name
}

/// Slot names are limited to lower-case letters, digits and `_`; the
/// publication name is held to the same, since pgoutput's option string
/// lists it unquoted.
fn is_simple_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// An identifier quoted for SQL: `"` doubled, the whole in `"`.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A string literal quoted for SQL (standard_conforming_strings is on
/// since PostgreSQL 9.1: only `'` needs doubling).
pub(crate) fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> PostgresConfig {
        toml::from_str(&format!("url = {url:?}\ntable = \"res_partner\"")).unwrap()
    }

    #[test]
    fn defaults_derive_from_the_system() {
        let s = Settings::resolve("Odoo-EU", &config("postgres://u@h:5433/db")).unwrap();
        assert_eq!(s.slot, "mdhub_odoo_eu");
        assert_eq!(s.publication, "mdhub_odoo_eu");
        assert_eq!(s.origin, "mdhub_odoo_eu");
        assert_eq!(s.schema, "public");
        assert_eq!(s.key, "id");
        assert_eq!(s.qualified_table(), "\"public\".\"res_partner\"");
    }

    #[test]
    fn a_password_in_the_file_is_refused_without_echoing_it() {
        let e = Settings::resolve("odoo", &config("postgres://u:s3cret@h/db")).unwrap_err();
        assert!(matches!(e, ConnectorError::Fatal(_)));
        assert!(!e.to_string().contains("s3cret"), "{e}");
        assert!(e.to_string().contains("url_env"), "{e}");
    }

    #[test]
    fn unknown_keys_and_bad_slot_names_are_refused() {
        assert!(toml::from_str::<PostgresConfig>("table = \"t\"\nslott = \"x\"").is_err());
        let mut c = config("postgres://u@h/db");
        c.slot = Some("Bad-Slot".into());
        assert!(Settings::resolve("odoo", &c).is_err());
    }

    #[test]
    fn identifiers_and_literals_are_quoted() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
