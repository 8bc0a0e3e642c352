//! The connector's configuration file, as `mdhub connector run --config FILE`
//! reads it: the settings every connector has, and one section naming the
//! kind of system with its own settings.
//!
//! ```toml
//! system = "erp"                      # as in the hub's [system.<name>]
//! entity = "customer"                 # default
//! mapping = "odoo_res_partner"        # a preset name, or a mapping file path
//! state_dir = "./mdhub-connector-erp" # cursor, insert ledger, reject file
//! metrics_listen = "127.0.0.1:9101"   # GET /metrics (Prometheus text)
//! write_back = true                   # apply golden updates (default true)
//! max_write_batch = 200               # updates per system transaction
//!
//! [nats]                              # as the hub's [nats]
//! urls = ["nats://127.0.0.1:4222"]
//!
//! [postgres]                          # exactly one of [postgres], [mysql], [http], [csv]
//! url_env = "ERP_DATABASE_URL"
//! table = "res_partner"
//! ```
//!
//! Every problem in the file is reported at once, each with its key path.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use mdhub_schema::model::is_token;
use mdhub_schema::Model;
use serde::Deserialize;

use crate::connect::NatsConnect;
use crate::mapping::{Mapping, MappingError};
use crate::presets;
use crate::runner::{self, RunContext, RunError};
use crate::{csv, http, mysql, postgres};

fn default_entity() -> String {
    "customer".into()
}

fn default_true() -> bool {
    true
}

fn default_batch() -> usize {
    200
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorFile {
    /// The system's name, as in the hub's `[system.<name>]`: lower-case
    /// letters, digits and `_`.
    pub system: String,
    #[serde(default = "default_entity")]
    pub entity: String,
    /// A preset's name (`odoo_res_partner`, `suitecrm_contacts`) or the path
    /// of a mapping file, relative to this file.
    pub mapping: String,
    /// The model file the mapping's canonical fields come from; unset: the
    /// built-in customer model.
    #[serde(default)]
    pub model: Option<PathBuf>,
    /// Where the connector keeps its cursor, insert ledger and reject file
    /// (`rejected.jsonl`), relative to this file.
    pub state_dir: PathBuf,
    /// Address of the `/metrics` endpoint; unset: none.
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
    #[serde(default = "default_true")]
    pub write_back: bool,
    #[serde(default = "default_batch")]
    pub max_write_batch: usize,
    #[serde(default)]
    pub nats: NatsConnect,
    #[serde(default)]
    pub postgres: Option<postgres::PostgresConfig>,
    #[serde(default)]
    pub mysql: Option<mysql::MysqlConfig>,
    #[serde(default)]
    pub http: Option<http::HttpConfig>,
    #[serde(default)]
    pub csv: Option<csv::CsvConfig>,
}

/// A configuration that cannot be used; every problem with its key path.
#[derive(Debug, thiserror::Error)]
#[error("connector config {path} has {} problem(s):\n  - {}", .problems.len(), .problems.join("\n  - "))]
pub struct ConfigError {
    pub path: String,
    pub problems: Vec<String>,
}

/// A checked configuration: the file and its parsed mapping.
#[derive(Debug)]
pub struct Checked {
    pub file: ConnectorFile,
    pub mapping: Mapping,
}

impl ConnectorFile {
    /// Reads and checks a file; `nats_urls` (from the command line)
    /// replaces `[nats] urls`.
    pub fn from_file(path: &Path, nats_urls: Option<&str>) -> Result<Checked, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.display().to_string(),
            problems: vec![format!("cannot read it: {e}")],
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, &path.display().to_string(), base, nats_urls)
    }

    /// Parses and checks a file; relative paths are taken from `base`.
    pub fn parse(
        text: &str,
        path: &str,
        base: &Path,
        nats_urls: Option<&str>,
    ) -> Result<Checked, ConfigError> {
        let fail = |problems| ConfigError {
            path: path.to_string(),
            problems,
        };
        let mut file: ConnectorFile =
            toml::from_str(text).map_err(|e| fail(vec![e.to_string()]))?;
        if let Some(urls) = nats_urls {
            file.nats.urls = crate::connect::split_urls(urls);
        }
        let mut problems = Vec::new();
        if !is_token(&file.system) {
            problems.push(format!(
                "system: {:?} must be lower-case letters, digits and '_' (the hub's [system.<name>])",
                file.system
            ));
        }
        if !is_token(&file.entity) {
            problems.push(format!(
                "entity: {:?} is not a valid entity name",
                file.entity
            ));
        }
        if file.max_write_batch == 0 || file.max_write_batch > 10_000 {
            problems.push("max_write_batch: must be between 1 and 10000".into());
        }
        let kinds = [
            file.postgres.is_some(),
            file.mysql.is_some(),
            file.http.is_some(),
            file.csv.is_some(),
        ];
        match kinds.iter().filter(|k| **k).count() {
            1 => {}
            0 => problems.push(
                "one section naming the system's kind is required: [postgres], [mysql], [http] or [csv]".into(),
            ),
            _ => problems.push(
                "only one of [postgres], [mysql], [http], [csv] may be given".into(),
            ),
        }
        problems.extend(
            file.nats
                .problems()
                .into_iter()
                .map(|p| format!("nats.{p}")),
        );
        problems.extend(kind_problems(&file));
        if file.state_dir.is_relative() {
            file.state_dir = base.join(&file.state_dir);
        }
        let model = match &file.model {
            None => Some(Model::default_customer()),
            Some(p) => match Model::from_file(&base.join(p)) {
                Ok(m) => Some(m),
                Err(e) => {
                    problems.push(format!("model: {e}"));
                    None
                }
            },
        };
        let mapping = model.and_then(|model| {
            let parsed = match presets::mapping(&file.mapping) {
                Some(text) => Mapping::parse(text, &format!("preset {}", file.mapping), &model),
                None => Mapping::from_file(&base.join(&file.mapping), &model),
            };
            match parsed {
                Ok(m) => Some(m),
                Err(MappingError::Invalid { problems: p, .. }) => {
                    problems.extend(p.into_iter().map(|p| format!("mapping: {p}")));
                    None
                }
                Err(e) => {
                    problems.push(format!(
                        "mapping: {e} (presets: {})",
                        presets::names().join(", ")
                    ));
                    None
                }
            }
        });
        match mapping {
            Some(mapping) if problems.is_empty() => Ok(Checked { file, mapping }),
            _ => Err(fail(problems)),
        }
    }
}

/// The kind section's own checks (a URL without a database, a bad
/// folder), as problems of the file.
fn kind_problems(file: &ConnectorFile) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(c) = &file.postgres {
        if let Err(e) = postgres::PostgresConnector::new(&file.system, c) {
            problems.push(format!("postgres: {e}"));
        }
    }
    if let Some(c) = &file.mysql {
        if let Err(e) = c.settings() {
            problems.push(format!("mysql: {e}"));
        }
    }
    if let Some(c) = &file.http {
        if let Err(e) = c.collection_url() {
            problems.push(format!("http: {e}"));
        }
    }
    if let Some(c) = &file.csv {
        if let Err(e) = csv::CsvConnector::new(c) {
            problems.push(format!("csv: {e}"));
        }
    }
    problems
}

impl Checked {
    /// Runs the connector the file describes until `ctx.shutdown`.
    pub async fn run(self, ctx: RunContext) -> Result<(), RunError> {
        let f = self.file;
        let fatal = RunError::Source;
        if let Some(c) = &f.postgres {
            let connector = postgres::PostgresConnector::new(&f.system, c).map_err(fatal)?;
            return runner::run(connector, ctx).await;
        }
        if let Some(c) = f.mysql {
            return runner::run(c, ctx).await;
        }
        if let Some(c) = f.http {
            return runner::run(c, ctx).await;
        }
        if let Some(c) = &f.csv {
            return runner::run(csv::CsvConnector::new(c).map_err(fatal)?, ctx).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Checked, ConfigError> {
        ConnectorFile::parse(
            text,
            "test.toml",
            Path::new("/etc/mdhub"),
            Some("nats://127.0.0.1:4222"),
        )
    }

    #[test]
    fn a_preset_file_parses_and_relative_paths_follow_the_file() {
        let c = parse(
            "system = \"erp\"\nmapping = \"odoo_res_partner\"\nstate_dir = \"state\"\n\
             [postgres]\nurl = \"postgres://mdhub@127.0.0.1/odoo\"\ntable = \"res_partner\"\narchive_column = \"active\"\n",
        )
        .expect("valid");
        assert_eq!(c.file.state_dir, Path::new("/etc/mdhub/state"));
        assert!(c.mapping.writable_fields().contains("email"));
        assert_eq!(c.file.entity, "customer");
        assert!(c.file.write_back);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let e = parse(
            "system = \"ERP\"\nmapping = \"no_such_preset\"\nstate_dir = \"s\"\nmax_write_batch = 0\n\
             [mysql]\nurl = \"mysql://u@h/db\"\ntable = \"t\"\nserver_id = 0\n\
             [http]\nbase_url = \"http://127.0.0.1:1\"\ncollection = \"c\"\n",
        )
        .expect_err("invalid");
        let text = e.to_string();
        for expected in [
            "system: \"ERP\"",
            "max_write_batch",
            "only one of [postgres]",
            "mysql: ",
            "mapping: ",
            "odoo_res_partner",
        ] {
            assert!(
                text.contains(expected),
                "{expected:?} missing from:\n{text}"
            );
        }
    }

    #[test]
    fn a_file_without_a_kind_or_with_an_unknown_key_is_refused() {
        let e = parse("system = \"erp\"\nmapping = \"odoo_res_partner\"\nstate_dir = \"s\"\n")
            .expect_err("no kind");
        assert!(
            e.to_string()
                .contains("[postgres], [mysql], [http] or [csv]"),
            "{e}"
        );
        let e = parse("system = \"erp\"\nmapping = \"m\"\nstate_dir = \"s\"\nstate_dri = 1\n")
            .expect_err("unknown key");
        assert!(e.to_string().contains("state_dri"), "{e}");
    }
}
