//! The hub's configuration file (`deploy/hub.toml` documents every key).
//! Unknown keys are refused and every problem is reported at once, each with
//! the path of the bad key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use mdhub_connectors::connect::{split_urls, NatsConnect};
use mdhub_schema::{Model, Survivorship};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::resolve::rules::MatchRules;
use crate::state::Rules;
pub use crate::state::SystemConfig;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubConfig {
    /// NATS server URL(s), comma-separated. Empty: no NATS (in-process bus).
    /// When set (here or with `--nats`) it replaces `nats.urls`.
    #[serde(default)]
    pub nats_url: Option<String>,
    /// How the hub connects to NATS: credentials, TLS, inbox prefix.
    #[serde(default)]
    pub nats: NatsConnect,
    /// Where the hub keeps its event log and derived state.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// HTTP API listen address.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Model files, one per entity. Empty: the built-in `customer` model.
    #[serde(default)]
    pub models: Vec<PathBuf>,
    /// Source systems, by name.
    #[serde(default, rename = "system")]
    pub systems: BTreeMap<String, SystemConfig>,
    #[serde(default)]
    pub survivorship: SurvivorshipConfig,
    #[serde(default)]
    pub ingest: IngestConfig,
    #[serde(default)]
    pub stream: StreamConfig,
    /// Where derived state (golden records, the match index) is kept.
    #[serde(default)]
    pub store: StoreConfig,
    /// Entity resolution: thresholds, block cap, m/u per comparison.
    #[serde(default, rename = "match")]
    pub matching: crate::resolve::rules::MatchConfig,
    /// API tokens. Only SHA-256 hashes are stored here.
    #[serde(default, rename = "token")]
    pub tokens: Vec<TokenConfig>,
    /// Signed checkpoints of the log's head.
    #[serde(default)]
    pub audit: AuditConfig,
}

/// Signed checkpoints of the log's head, which let an auditor show later
/// that no entry was removed or rewritten (see `mdhub audit keygen` and
/// `mdhub audit verify`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// The Ed25519 key file that signs checkpoints (`mdhub audit keygen`
    /// writes one). None: the hub signs no checkpoints.
    #[serde(default)]
    pub signing_key: Option<PathBuf>,
    /// Log entries between two signed checkpoints.
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            signing_key: None,
            checkpoint_every: default_checkpoint_every(),
        }
    }
}

fn default_checkpoint_every() -> u64 {
    10_000
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SurvivorshipConfig {
    /// Systems in order of trust, for `source_priority` fields. Systems not
    /// listed rank after all listed ones, by name.
    #[serde(default)]
    pub source_priority: Vec<String>,
    /// Per-field policy, overriding the model's default.
    #[serde(default)]
    pub fields: BTreeMap<String, Survivorship>,
}

/// Derived state: golden records and the match index, rebuilt from the log.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `redb`: on disk in `<data_dir>/derived.redb`, memory bounded by the
    /// caches.
    /// `memory`: in the hub's memory, encoded (tests, small hubs). The
    /// environment variable `MDHUB_STORE` overrides it, so that a test
    /// suite can run on either.
    #[serde(default)]
    pub kind: StoreKind,
    /// Golden records kept decoded in memory; the others are read from the
    /// store when an entry or a request needs them. A decoded record takes
    /// 25 to 50 KiB (its Automerge document, most of it); reading one back
    /// costs about 70 us, so a cache smaller than the records being edited
    /// slows ingest.
    #[serde(default = "default_cache_records")]
    pub cache_records: usize,
    /// Log entries derived between two checkpoints of the derived state.
    /// A start derives only the entries after the last checkpoint; between
    /// checkpoints, what derivation wrote is held in memory. The hub also
    /// checkpoints when it has been idle for a few seconds and when it
    /// stops. Each checkpoint writes the records changed since the last
    /// one, so fewer checkpoints cost less ingest time and more restart time.
    #[serde(default = "default_checkpoint_entries")]
    pub checkpoint_entries: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    #[default]
    Redb,
    Memory,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            kind: StoreKind::default(),
            cache_records: default_cache_records(),
            checkpoint_entries: default_checkpoint_entries(),
        }
    }
}

impl StoreConfig {
    /// The kind in force: `MDHUB_STORE` (`redb` or `memory`) if set, else
    /// the configured one.
    pub fn kind(&self) -> Result<StoreKind, String> {
        match std::env::var("MDHUB_STORE").as_deref() {
            Err(_) | Ok("") => Ok(self.kind),
            Ok("redb") => Ok(StoreKind::Redb),
            Ok("memory") => Ok(StoreKind::Memory),
            Ok(other) => Err(format!(
                "MDHUB_STORE={other:?}: expected \"redb\" or \"memory\""
            )),
        }
    }
}

fn default_checkpoint_entries() -> u64 {
    crate::state::DEFAULT_CHECKPOINT_ENTRIES
}

fn default_cache_records() -> usize {
    crate::state::DEFAULT_CACHE_RECORDS
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Largest accepted event in bytes; larger ones go to the DLQ.
    #[serde(default = "default_max_event_bytes")]
    pub max_event_bytes: usize,
    /// Messages fetched, appended and flushed together. Bigger batches mean
    /// fewer fsyncs.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// How long to wait for more messages when fewer than `batch_size` are
    /// ready, in milliseconds: under load, bigger batches and fewer fsyncs;
    /// when quiet, at most this much added latency.
    #[serde(default = "default_linger_ms")]
    pub linger_ms: u64,
    /// Durable consumer name on MDHUB_IN.
    #[serde(default = "default_consumer")]
    pub consumer: String,
    /// Start even though MDHUB_IN no longer holds messages the hub has not
    /// read (`mdhub serve --accept-input-gap`). Never read from a file: a
    /// gap is accepted once, by someone who looked, not for good.
    #[serde(skip)]
    pub accept_input_gap: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// Replicas of the MDHUB_IN / MDHUB_OUT / MDHUB_DLQ streams (3 in production).
    #[serde(default = "default_replicas")]
    pub replicas: usize,
    /// JetStream duplicate window for plain publishes with Nats-Msg-Id, in seconds.
    #[serde(default = "default_duplicate_window")]
    pub duplicate_window_secs: u64,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds the token (shown in logs, never the token).
    pub name: String,
    pub role: Role,
    /// Hex SHA-256 of the bearer token (`mdhub token hash` prints it).
    pub sha256: String,
}

impl std::fmt::Debug for TokenConfig {
    // The hash is not the secret, but it has no business in logs either.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenConfig")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// Roles, each including the rights of those before it:
/// reader < steward < admin; auditor = reader + audit endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Reader,
    Steward,
    Auditor,
    Admin,
}

impl Role {
    /// May a holder of `self` do what needs `needed`?
    pub fn allows(self, needed: Role) -> bool {
        match (self, needed) {
            (Role::Admin, _) => true,
            (_, Role::Reader) => true,
            (have, need) => have == need,
        }
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./mdhub-data")
}
fn default_listen() -> SocketAddr {
    "127.0.0.1:8080".parse().expect("valid address")
}
fn default_max_event_bytes() -> usize {
    256 * 1024
}
fn default_batch_size() -> usize {
    500
}
fn default_linger_ms() -> u64 {
    5
}
fn default_consumer() -> String {
    "mdhub-hub".to_string()
}
fn default_replicas() -> usize {
    1
}
fn default_duplicate_window() -> u64 {
    120
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_event_bytes: default_max_event_bytes(),
            batch_size: default_batch_size(),
            linger_ms: default_linger_ms(),
            consumer: default_consumer(),
            accept_input_gap: false,
        }
    }
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            replicas: default_replicas(),
            duplicate_window_secs: default_duplicate_window(),
        }
    }
}

impl Default for HubConfig {
    fn default() -> Self {
        toml::from_str("").expect("empty config takes every default")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Parse { path: String, message: String },
    #[error("config {path} has {} problem(s):\n  - {}", .problems.len(), .problems.join("\n  - "))]
    Invalid { path: String, problems: Vec<String> },
    #[error(transparent)]
    Model(#[from] mdhub_schema::ModelError),
}

impl HubConfig {
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, path: &str) -> Result<Self, ConfigError> {
        let config: HubConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_string(),
            message: e.to_string(),
        })?;
        Ok(config)
    }

    /// The NATS connection settings: the `[nats]` table, with `nats_url`
    /// (or `--nats`) as the server list when set. `None` without any URL.
    /// Checked when connecting, not here: commands that never connect
    /// (audit replay) must not need the hub's NATS password.
    pub fn nats_connect(&self) -> Option<NatsConnect> {
        let mut nats = self.nats.clone();
        if let Some(urls) = self.nats_url.as_deref().filter(|u| !u.trim().is_empty()) {
            nats.urls = split_urls(urls);
        }
        (!nats.urls.is_empty()).then_some(nats)
    }

    /// The parts of this configuration derivation depends on, with the
    /// `models` (from `load_models`).
    pub fn rules(&self, models: BTreeMap<String, Model>) -> Rules {
        Rules {
            models,
            systems: self.systems.clone(),
            source_priority: self.survivorship.source_priority.clone(),
            field_policy: self.survivorship.fields.clone(),
            matching: MatchRules::from_config(&self.matching),
        }
    }

    /// Loads the models and checks everything that refers to them; reports
    /// every problem at once.
    pub fn load_models(&self, path: &str) -> Result<BTreeMap<String, Model>, ConfigError> {
        let mut models = BTreeMap::new();
        if self.models.is_empty() {
            let m = Model::default_customer();
            models.insert(m.entity.clone(), m);
        }
        for file in &self.models {
            let m = Model::from_file(file)?;
            models.insert(m.entity.clone(), m);
        }
        let mut problems = Vec::new();
        for (name, system) in &self.systems {
            if !mdhub_schema::model::is_token(name) {
                problems.push(format!(
                    "system.{name}: names are lower-case letters, digits and '_'"
                ));
            }
            for (i, field) in system.fields.iter().enumerate() {
                if !models.values().any(|m| m.field(field).is_some()) {
                    problems.push(format!(
                        "system.{name}.fields[{i}]: no model has field {field:?}"
                    ));
                }
            }
        }
        for (i, s) in self.survivorship.source_priority.iter().enumerate() {
            if !self.systems.contains_key(s) {
                problems.push(format!(
                    "survivorship.source_priority[{i}]: system {s:?} is not configured"
                ));
            }
        }
        for field in self.survivorship.fields.keys() {
            if !models.values().any(|m| m.field(field).is_some()) {
                problems.push(format!(
                    "survivorship.fields.{field}: no model has this field"
                ));
            }
        }
        for (i, t) in self.tokens.iter().enumerate() {
            if t.sha256.len() != 64 || !t.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                problems.push(format!(
                    "token[{i}] ({}).sha256: expected 64 hex digits",
                    t.name
                ));
            }
        }
        if self.ingest.linger_ms > 1_000 {
            problems.push("ingest.linger_ms: at most 1000".to_string());
        }
        if self.ingest.batch_size == 0 || self.ingest.batch_size > 10_000 {
            problems.push("ingest.batch_size: must be 1 to 10000".to_string());
        }
        if !(1..=5).contains(&self.stream.replicas) {
            problems.push("stream.replicas: must be 1 to 5".to_string());
        }
        problems.extend(self.matching.problems());
        for (name, system) in &self.systems {
            if name == crate::steward::STEWARD_SYSTEM {
                problems.push(format!(
                    "system.{name}: the name is reserved for data stewards' actions"
                ));
            }
            if let Some(region) = &system.region {
                if region.len() != 2 || !region.chars().all(|c| c.is_ascii_uppercase()) {
                    problems.push(format!(
                        "system.{name}.region: {region:?} is not an ISO 3166-1 alpha-2 code such as \"DE\""
                    ));
                }
            }
        }
        if problems.is_empty() {
            Ok(models)
        } else {
            Err(ConfigError::Invalid {
                path: path.to_string(),
                problems,
            })
        }
    }
}

/// Hex SHA-256 of a bearer token, as stored in `[[token]] sha256`.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_usable() {
        let c = HubConfig::default();
        assert_eq!(c.ingest.batch_size, 500);
        assert!(c.load_models("-").unwrap().contains_key("customer"));
    }

    #[test]
    fn unknown_keys_name_the_key() {
        let err = HubConfig::parse("[ingest]\nbatch = 3\n", "hub.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("batch"), "{err}");
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let text = r#"
            [system.crm]
            fields = ["email", "shoe_size"]
            [survivorship]
            source_priority = ["erp"]
            [[token]]
            name = "ops"
            role = "reader"
            sha256 = "abc"
        "#;
        let c = HubConfig::parse(text, "hub.toml").unwrap();
        let err = c.load_models("hub.toml").unwrap_err().to_string();
        assert!(err.contains("3 problem"), "{err}");
        assert!(err.contains("system.crm.fields[1]"), "{err}");
        assert!(err.contains("source_priority[0]"), "{err}");
        assert!(err.contains("token[0] (ops).sha256"), "{err}");
    }

    #[test]
    fn the_documented_deploy_config_is_valid() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/hub.toml");
        let c = HubConfig::from_file(Path::new(path)).unwrap();
        c.load_models(path).unwrap();
        assert_eq!(c.ingest.batch_size, IngestConfig::default().batch_size);
        assert_eq!(c.survivorship.source_priority, ["erp", "crm"]);
    }

    #[test]
    fn nats_url_replaces_the_nats_table_urls() {
        let text = r#"
            [nats]
            urls = ["nats://10.0.0.1:4222"]
            user = "hub"
            password_env = "MDHUB_NATS_HUB_PASSWORD"
            tls_ca_file = "/etc/mdhub/nats-ca.crt"
            inbox_prefix = "_INBOX.hub"
        "#;
        let mut c = HubConfig::parse(text, "hub.toml").unwrap();
        assert_eq!(c.nats_connect().unwrap().urls, ["nats://10.0.0.1:4222"]);
        c.nats_url = Some("nats://a:4222, nats://b:4222".to_string());
        let nats = c.nats_connect().unwrap();
        assert_eq!(nats.urls, ["nats://a:4222", "nats://b:4222"]);
        assert_eq!(nats.user.as_deref(), Some("hub"));
        assert_eq!(nats.inbox_prefix.as_deref(), Some("_INBOX.hub"));
        assert!(HubConfig::default().nats_connect().is_none());
    }

    #[test]
    fn roles() {
        assert!(Role::Admin.allows(Role::Steward));
        assert!(Role::Steward.allows(Role::Reader));
        assert!(!Role::Reader.allows(Role::Steward));
        assert!(!Role::Steward.allows(Role::Auditor));
        assert!(Role::Auditor.allows(Role::Reader));
    }
}
