//! The `[http]` section of a connector's config file: which REST collection
//! to follow, how to page through it, and how to write back.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;

use crate::contract::ConnectorError;

/// One REST collection (`GET <base_url>/<collection>` lists it, `GET
/// <base_url>/<collection>/<id>` reads one record), in the json-server
/// query dialect (`_page`, `_limit`, `_sort`, `_order`, `<field>_gte`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// The API's root, `http://` or `https://`, e.g. `https://crm.example/api`.
    pub base_url: String,
    /// The collection's path under `base_url`, e.g. `customers` or
    /// `v2/customers` (segments are separated by `/`).
    pub collection: String,
    /// The record field holding its id (a string or a number).
    #[serde(default = "default_key")]
    pub key: String,
    /// The record field holding its last change time (ISO 8601 text the API
    /// stamps on every write); the change cursor.
    #[serde(default = "default_updated_field")]
    pub updated_field: String,
    /// Time between two polls for changes, in milliseconds.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// Time between two full listings of the ids, which is how deletes are
    /// found (an API does not list what it deleted), in seconds; 0: never.
    #[serde(default = "default_full_list_interval_secs")]
    pub full_list_interval_secs: u64,
    /// Records per page when listing (`_limit`), 1 to 10,000.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// How an update is sent: `patch` (only the written fields) or `put`
    /// (the record as read, with the written fields merged in).
    #[serde(default)]
    pub update_method: UpdateMethod,
    /// Name of an environment variable holding a bearer token (sent as
    /// `Authorization: Bearer …`). The token itself never goes in the file.
    #[serde(default)]
    pub token_env: Option<String>,
    /// An address (`127.0.0.1:8089`) to accept change notifications on:
    /// any `POST /webhook` makes the source poll at once, so changes show up
    /// without waiting for the poll interval. The body (the changed record
    /// or its id) is not trusted: the poll reads the record from the API.
    #[serde(default)]
    pub webhook_listen: Option<SocketAddr>,
    /// A boolean field that marks a record archived: retiring a record sets
    /// it to `true` (a PATCH) instead of deleting it, and a record read with
    /// it `true` is captured as a delete. Unset: retire = `DELETE`.
    #[serde(default)]
    pub archive_field: Option<String>,
    /// A JSON file (`<dir>/<name>.json`, name of lower-case letters, digits
    /// and `_`) where the ids known to exist are kept between runs, so that
    /// deletes made while the connector was stopped are found. Unset: after
    /// a restart the first full listing only sets the ids to compare with.
    #[serde(default)]
    pub known_ids_file: Option<PathBuf>,
    /// Time to wait for a TCP (and TLS) connection, in milliseconds.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Time a whole request may take, answer included, in milliseconds.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
}

/// How the sink sends an update to an existing record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpdateMethod {
    /// `PATCH` with only the written fields.
    #[default]
    Patch,
    /// `GET`, merge the written fields, `PUT` the whole record (for APIs
    /// without PATCH).
    Put,
}

fn default_key() -> String {
    "id".to_string()
}
fn default_updated_field() -> String {
    "updatedAt".to_string()
}
fn default_poll_interval_ms() -> u64 {
    5_000
}
fn default_full_list_interval_secs() -> u64 {
    300
}
fn default_page_size() -> u32 {
    100
}
fn default_connect_timeout_ms() -> u64 {
    3_000
}
fn default_request_timeout_ms() -> u64 {
    10_000
}

/// Largest `page_size`: a page is held in memory and is one request.
pub const MAX_PAGE_SIZE: u32 = 10_000;

impl HttpConfig {
    /// A config with every optional key at its default.
    pub fn new(base_url: impl Into<String>, collection: impl Into<String>) -> Self {
        HttpConfig {
            base_url: base_url.into(),
            collection: collection.into(),
            key: default_key(),
            updated_field: default_updated_field(),
            poll_interval_ms: default_poll_interval_ms(),
            full_list_interval_secs: default_full_list_interval_secs(),
            page_size: default_page_size(),
            update_method: UpdateMethod::default(),
            token_env: None,
            webhook_listen: None,
            archive_field: None,
            known_ids_file: None,
            connect_timeout_ms: default_connect_timeout_ms(),
            request_timeout_ms: default_request_timeout_ms(),
        }
    }

    /// The collection's URL (`base_url` + the collection's segments,
    /// percent-encoded), or what is wrong with the config, all problems at
    /// once.
    pub fn collection_url(&self) -> Result<Url, ConnectorError> {
        let mut problems = Vec::new();
        let url = match Url::parse(&self.base_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && !u.cannot_be_a_base() => Some(u),
            Ok(_) => {
                problems.push("http.base_url: must be an http:// or https:// URL".to_string());
                None
            }
            Err(e) => {
                problems.push(format!("http.base_url: not a URL ({e})"));
                None
            }
        };
        let segments: Vec<&str> = self
            .collection
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        if segments.is_empty() || segments.iter().any(|s| matches!(*s, "." | "..")) {
            problems.push("http.collection: must be a path such as `customers`".to_string());
        }
        for (name, field) in [("key", &self.key), ("updated_field", &self.updated_field)] {
            if field.is_empty() {
                problems.push(format!("http.{name}: must not be empty"));
            }
        }
        if self.archive_field.as_deref() == Some("") {
            problems.push("http.archive_field: must not be empty when set".to_string());
        }
        if !(1..=MAX_PAGE_SIZE).contains(&self.page_size) {
            problems.push(format!("http.page_size: 1 to {MAX_PAGE_SIZE}"));
        }
        if self.poll_interval_ms == 0 {
            problems.push("http.poll_interval_ms: must be above 0".to_string());
        }
        if self.connect_timeout_ms == 0 || self.request_timeout_ms == 0 {
            problems.push("http.connect_timeout_ms, request_timeout_ms: must be above 0".into());
        }
        if let Some(file) = &self.known_ids_file {
            if let Err(reason) = known_ids_location(file) {
                problems.push(format!("http.known_ids_file: {reason}"));
            }
        }
        match url {
            Some(mut url) if problems.is_empty() => {
                if let Ok(mut path) = url.path_segments_mut() {
                    // `https://x/api/` + `customers`, not `https://x/api//customers`.
                    path.pop_if_empty().extend(segments);
                }
                Ok(url)
            }
            _ => Err(ConnectorError::Fatal(problems.join("; "))),
        }
    }

    pub(crate) fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }

    pub(crate) fn full_list_interval(&self) -> Option<Duration> {
        (self.full_list_interval_secs > 0)
            .then(|| Duration::from_secs(self.full_list_interval_secs))
    }
}

/// `known_ids_file` split into the checkpoint directory and the name the
/// checkpoint store saves it under.
pub(crate) fn known_ids_location(file: &std::path::Path) -> Result<(PathBuf, String), String> {
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".json"))
        .filter(|n| mdhub_schema::model::is_token(n))
        .ok_or("the file name must be <name>.json, name of lower-case letters, digits and '_'")?;
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    Ok((dir.to_path_buf(), name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_defaults_and_refuses_unknown_keys() {
        let cfg: HttpConfig = toml::from_str(
            "base_url = \"http://127.0.0.1:3000/api/\"\ncollection = \"customers\"\n\
             update_method = \"put\"\narchive_field = \"archived\"",
        )
        .expect("valid config");
        assert_eq!(cfg.key, "id");
        assert_eq!(cfg.updated_field, "updatedAt");
        assert_eq!(cfg.update_method, UpdateMethod::Put);
        assert_eq!(
            cfg.collection_url().expect("valid").as_str(),
            "http://127.0.0.1:3000/api/customers"
        );
        let err = toml::from_str::<HttpConfig>(
            "base_url = \"http://x\"\ncollection = \"c\"\ntoken = \"secret\"",
        )
        .expect_err("unknown key");
        assert!(err.to_string().contains("token"), "{err}");
    }

    #[test]
    fn reports_every_problem() {
        let mut cfg = HttpConfig::new("ftp://x", "..");
        cfg.page_size = 0;
        cfg.known_ids_file = Some("state/Known Ids.json".into());
        let Err(ConnectorError::Fatal(msg)) = cfg.collection_url() else {
            panic!("expected a fatal error");
        };
        for key in ["base_url", "collection", "page_size", "known_ids_file"] {
            assert!(msg.contains(key), "{msg}");
        }
    }
}
