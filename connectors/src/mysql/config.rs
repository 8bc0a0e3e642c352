//! The `[mysql]` section of a connector's configuration file, and the
//! settings checked out of it before anything connects.

use serde::Deserialize;

use crate::contract::ConnectorError;

/// One MariaDB/MySQL table captured from the binary log and written back.
///
/// ```toml
/// [mysql]
/// url_env = "SUITECRM_DB_URL"   # mysql://user:password@host:3306/suitecrm
/// table = "contacts"
/// server_id = 4101
/// archive_column = "deleted"
/// modified_column = "date_modified"
/// suitecrm_email = true
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlConfig {
    /// Connection URL, `mysql://user:password@host:port/database`; the
    /// database is the one the table is in. Prefer `url_env`: a URL here puts
    /// the password in the file.
    pub url: Option<String>,
    /// Name of the environment variable that holds the connection URL.
    pub url_env: Option<String>,
    /// The table to capture and write (in the URL's database).
    pub table: String,
    /// Its primary-key column (one column: text or integer). Default `id`.
    #[serde(default = "default_key")]
    pub key: String,
    /// The connector's own replica id on the binary log: it must differ from
    /// the server's `server_id` and from every other replica's (a second
    /// replica with the same id disconnects the first).
    pub server_id: u32,
    /// A flag column that archives a record (SuiteCRM's `deleted`): a row
    /// with 1 in it is captured as a delete and left out of the initial
    /// load, and a retire writes 1. Without it a retire deletes the row.
    pub archive_column: Option<String>,
    /// The record's change-time column (SuiteCRM's `date_modified`, a
    /// DATETIME in UTC): captured as the change's `observed_at`, and set to
    /// the server's UTC time by every write-back.
    pub modified_column: Option<String>,
    /// SuiteCRM's primary e-mail relation: a contact's primary address
    /// (`email_addresses` joined through `email_addr_bean_rel`) read and
    /// written as the virtual column [`EMAIL_COLUMN`]. Default false.
    #[serde(default)]
    pub suitecrm_email: bool,
    /// Rows per slice of the initial load. Default 1000.
    #[serde(default = "default_load_batch")]
    pub load_batch: u32,
}

/// The virtual column holding a SuiteCRM contact's primary e-mail address
/// (SuiteCRM's own name for the field), with `suitecrm_email = true`.
pub const EMAIL_COLUMN: &str = "email1";

fn default_key() -> String {
    "id".to_string()
}

fn default_load_batch() -> u32 {
    1000
}

/// A checked configuration: names are plain, the URL is read and names a
/// database.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub opts: mysql_async::Opts,
    pub database: String,
    pub table: String,
    pub key: String,
    pub server_id: u32,
    pub archive_column: Option<String>,
    pub modified_column: Option<String>,
    pub suitecrm_email: bool,
    pub load_batch: u32,
}

impl MysqlConfig {
    /// Checks the configuration and reads the URL (from the environment with
    /// `url_env`). Every failure is `Fatal`; none shows the URL, which may
    /// hold a password.
    pub(crate) fn settings(&self) -> Result<Settings, ConnectorError> {
        let fatal = |m: String| ConnectorError::Fatal(format!("[mysql] {m}"));
        let url = match (&self.url, &self.url_env) {
            (Some(url), None) => url.clone(),
            (None, Some(var)) => std::env::var(var)
                .map_err(|_| fatal(format!("url_env: environment variable {var} is not set")))?,
            _ => return Err(fatal("set exactly one of url and url_env".into())),
        };
        let opts = mysql_async::Opts::from_url(&url)
            .map_err(|_| fatal("the connection URL is not a valid mysql:// URL".into()))?;
        let database = opts
            .db_name()
            .map(str::to_string)
            .filter(|d| !d.is_empty())
            .ok_or_else(|| fatal("the connection URL names no database (mysql://…/db)".into()))?;
        for (what, name) in [("table", Some(&self.table)), ("key", Some(&self.key))]
            .into_iter()
            .chain([
                ("archive_column", self.archive_column.as_ref()),
                ("modified_column", self.modified_column.as_ref()),
            ])
        {
            if let Some(name) = name {
                if name.is_empty() || name.len() > 64 || name.contains('\0') {
                    return Err(fatal(format!("{what} is not a table or column name")));
                }
            }
        }
        if self.server_id == 0 {
            return Err(fatal(
                "server_id must not be 0 (a replica needs an id)".into(),
            ));
        }
        if self.load_batch == 0 {
            return Err(fatal("load_batch must be at least 1".into()));
        }
        Ok(Settings {
            opts,
            database,
            table: self.table.clone(),
            key: self.key.clone(),
            server_id: self.server_id,
            archive_column: self.archive_column.clone(),
            modified_column: self.modified_column.clone(),
            suitecrm_email: self.suitecrm_email,
            load_batch: self.load_batch,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<MysqlConfig, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn defaults_and_unknown_keys() {
        let c = parse("url = \"mysql://u:p@h/db\"\ntable = \"contacts\"\nserver_id = 7").unwrap();
        assert_eq!(c.key, "id");
        assert_eq!(c.load_batch, 1000);
        assert!(!c.suitecrm_email);
        let s = c.settings().unwrap();
        assert_eq!(s.database, "db");
        assert!(parse("table = \"t\"\nserver_id = 7\ntabel = 1").is_err());
    }

    #[test]
    fn url_errors_do_not_show_the_url() {
        let mut c = parse("url = \"mysql://u:secret@h\"\ntable = \"t\"\nserver_id = 7").unwrap();
        let e = c.settings().unwrap_err().to_string();
        assert!(e.contains("no database") && !e.contains("secret"), "{e}");
        c.url = Some("nonsense://secret".into());
        let e = c.settings().unwrap_err().to_string();
        assert!(!e.contains("secret"), "{e}");
        c.url = None;
        c.url_env = Some("MDHUB_TEST_UNSET_MYSQL_URL".into());
        let e = c.settings().unwrap_err().to_string();
        assert!(e.contains("MDHUB_TEST_UNSET_MYSQL_URL"), "{e}");
    }

    #[test]
    fn server_id_zero_is_refused() {
        let c = parse("url = \"mysql://u@h/db\"\ntable = \"t\"\nserver_id = 0").unwrap();
        assert!(matches!(c.settings(), Err(ConnectorError::Fatal(_))));
    }
}
