//! How the hub and the connectors connect to NATS: server URLs, credentials,
//! TLS and the inbox prefix, as one config section ([`NatsConnect`]).
//!
//! Secrets (a password, an nkey seed) are never written in the config
//! itself: the config names the file or the environment variable that holds
//! them, and they are read only when connecting. Neither `Debug` nor any
//! error shows a secret value; errors name the setting and the file or
//! variable instead.
//!
//! The inbox prefix matters on a locked-down server (deploy/nats/secure/):
//! every user there may only subscribe to its own `_INBOX.<user>.>`, so its
//! client must set `inbox_prefix = "_INBOX.<user>"`.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Connection settings for one NATS client.
///
/// At most one kind of credentials: `user` with `password_file` or
/// `password_env`; `nkey_seed_file` or `nkey_seed_env`; or `creds_file`
/// (a JWT creds file, for servers in operator mode).
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NatsConnect {
    /// Server URLs (`nats://host:4222`, `tls://host:4222`); a cluster lists
    /// every node. Credentials in a URL are refused: they would end up in
    /// logs.
    #[serde(default)]
    pub urls: Vec<String>,
    /// User name, with a password from `password_file` or `password_env`.
    #[serde(default)]
    pub user: Option<String>,
    /// File holding the password (one line; a trailing newline is ignored).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// File holding an nkey seed (`SU...`).
    #[serde(default)]
    pub nkey_seed_file: Option<PathBuf>,
    /// Environment variable holding an nkey seed.
    #[serde(default)]
    pub nkey_seed_env: Option<String>,
    /// NATS creds file (user JWT and nkey seed).
    #[serde(default)]
    pub creds_file: Option<PathBuf>,
    /// CA certificates (PEM) the server's certificate must chain to. Setting
    /// it requires TLS.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// Client certificate (PEM), for servers that verify clients; with
    /// `tls_key_file`.
    #[serde(default)]
    pub tls_cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[serde(default)]
    pub tls_key_file: Option<PathBuf>,
    /// Refuse a connection without TLS even when no CA file is given (the
    /// system's trusted roots are used then).
    #[serde(default)]
    pub require_tls: bool,
    /// Prefix of this client's reply subjects, e.g. `_INBOX.crm`. Unset:
    /// `_INBOX`.
    #[serde(default)]
    pub inbox_prefix: Option<String>,
}

impl fmt::Debug for NatsConnect {
    // Only where secrets come from, never what they are; written by hand so
    // that a field added later does not show up in logs unseen.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsConnect")
            .field("urls", &self.urls)
            .field("user", &self.user)
            .field("credentials", &self.credentials_kind())
            .field("tls_ca_file", &self.tls_ca_file)
            .field("tls_cert_file", &self.tls_cert_file)
            .field("require_tls", &self.require_tls)
            .field("inbox_prefix", &self.inbox_prefix)
            .finish_non_exhaustive()
    }
}

/// Makes aws-lc-rs rustls' process-wide crypto provider. The binary links
/// rustls with two providers (async-nats asks for aws-lc-rs; reqwest and
/// the PostgreSQL replication client for ring), and rustls then refuses to
/// guess: a TLS connection to NATS would panic. Installing it twice is
/// harmless (the second call is refused and ignored).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Why connecting failed. Names settings, files and variables; never a
/// secret value.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("NATS settings for {client}: {} problem(s):\n  - {}", .problems.len(), .problems.join("\n  - "))]
    Invalid {
        client: String,
        problems: Vec<String>,
    },
    #[error("NATS settings for {client}: {setting} {path}: {reason}")]
    File {
        client: String,
        setting: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("NATS settings for {client}: {setting}: environment variable {var}: {reason}")]
    Env {
        client: String,
        setting: &'static str,
        var: String,
        reason: String,
    },
    #[error("connecting {client} to NATS at {urls}: {reason}")]
    Connect {
        client: String,
        urls: String,
        reason: String,
    },
}

/// A secret read for one connection attempt.
struct Secret {
    value: String,
}

impl NatsConnect {
    /// Settings with these URLs only (comma-separated, as in the hub's
    /// `nats_url`), no credentials, no TLS beyond what the server asks for.
    pub fn with_urls(urls: &str) -> Self {
        NatsConnect {
            urls: split_urls(urls),
            ..Default::default()
        }
    }

    /// Every problem with these settings, each naming its setting; empty
    /// when they are usable. Files and environment variables are checked
    /// for presence only (they are read when connecting).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.urls.is_empty() {
            problems.push("urls: no server URL given".to_string());
        }
        for (i, url) in self.urls.iter().enumerate() {
            match url.parse::<async_nats::ServerAddr>() {
                // The URL itself is not repeated: it holds a password.
                Ok(addr) if addr.has_user_pass() => problems.push(format!(
                    "urls[{i}]: credentials in the URL are refused; use user and password_file or password_env"
                )),
                Ok(_) => {}
                Err(e) => problems.push(format!("urls[{i}]: {url:?} is not a NATS URL: {e}")),
            }
        }
        let kinds: Vec<&str> = [
            (self.user.is_some() || self.password_file.is_some() || self.password_env.is_some())
                .then_some("user/password"),
            (self.nkey_seed_file.is_some() || self.nkey_seed_env.is_some()).then_some("nkey seed"),
            self.creds_file.is_some().then_some("creds_file"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if kinds.len() > 1 {
            problems.push(format!(
                "credentials: give one kind, not {}",
                kinds.join(" and ")
            ));
        }
        match (&self.user, &self.password_file, &self.password_env) {
            (Some(_), None, None) => {
                problems.push("user: needs password_file or password_env".to_string())
            }
            (None, Some(_), _) | (None, _, Some(_)) => {
                problems.push("password_file/password_env: needs user".to_string())
            }
            (_, Some(_), Some(_)) => {
                problems.push("password_file and password_env: give one".to_string())
            }
            _ => {}
        }
        if let Some(user) = &self.user {
            if user.is_empty() || user.chars().any(|c| c.is_whitespace() || c.is_control()) {
                problems.push("user: empty or contains white space".to_string());
            }
        }
        if self.nkey_seed_file.is_some() && self.nkey_seed_env.is_some() {
            problems.push("nkey_seed_file and nkey_seed_env: give one".to_string());
        }
        for (setting, path) in [
            ("password_file", &self.password_file),
            ("nkey_seed_file", &self.nkey_seed_file),
            ("creds_file", &self.creds_file),
            ("tls_ca_file", &self.tls_ca_file),
            ("tls_cert_file", &self.tls_cert_file),
            ("tls_key_file", &self.tls_key_file),
        ] {
            if let Some(path) = path {
                if !path.is_file() {
                    problems.push(format!(
                        "{setting}: {} is not a readable file",
                        path.display()
                    ));
                }
            }
        }
        for (setting, var) in [
            ("password_env", &self.password_env),
            ("nkey_seed_env", &self.nkey_seed_env),
        ] {
            if let Some(var) = var {
                if std::env::var_os(var).is_none_or(|v| v.is_empty()) {
                    problems.push(format!("{setting}: environment variable {var} is not set"));
                }
            }
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            problems.push("tls_cert_file and tls_key_file: give both or neither".to_string());
        }
        if let Some(prefix) = &self.inbox_prefix {
            let valid = !prefix.is_empty()
                && prefix
                    .split('.')
                    .all(|t| !t.is_empty() && t != "*" && t != ">")
                && !prefix.chars().any(|c| c.is_whitespace() || c.is_control());
            if !valid {
                problems.push(format!(
                    "inbox_prefix: {prefix:?} is not a subject without wildcards, e.g. \"_INBOX.crm\""
                ));
            }
        }
        problems
    }

    /// async-nats options for these settings, secrets read from their files
    /// or variables. For callers that add options of their own (an event
    /// callback); most want [`NatsConnect::connect`].
    pub async fn options(
        &self,
        client_name: &str,
    ) -> Result<async_nats::ConnectOptions, ConnectError> {
        self.options_and_secret(client_name)
            .await
            .map(|(options, _)| options)
    }

    /// Connects as `client_name` (the name the server shows in its
    /// connection list).
    pub async fn connect(&self, client_name: &str) -> Result<async_nats::Client, ConnectError> {
        let (options, secret) = self.options_and_secret(client_name).await?;
        let addrs = self
            .urls
            .iter()
            .map(|u| u.parse::<async_nats::ServerAddr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.connect_error(client_name, &e.to_string(), secret.as_ref()))?;
        options
            .connect(addrs)
            .await
            .map_err(|e| self.connect_error(client_name, &error_chain(&e), secret.as_ref()))
    }

    fn connect_error(&self, client: &str, reason: &str, secret: Option<&Secret>) -> ConnectError {
        // async-nats does not put credentials in its errors; redacting
        // anyway keeps that true whatever a later version or the server
        // says back.
        let reason = match secret {
            Some(s) if !s.value.is_empty() => reason.replace(&s.value, "[redacted]"),
            _ => reason.to_string(),
        };
        ConnectError::Connect {
            client: client.to_string(),
            urls: self.urls.join(","),
            reason,
        }
    }

    async fn options_and_secret(
        &self,
        client_name: &str,
    ) -> Result<(async_nats::ConnectOptions, Option<Secret>), ConnectError> {
        install_crypto_provider();
        let problems = self.problems();
        if !problems.is_empty() {
            return Err(ConnectError::Invalid {
                client: client_name.to_string(),
                problems,
            });
        }
        let mut options = async_nats::ConnectOptions::new().name(client_name);
        let mut secret = None;
        if let Some(user) = &self.user {
            let password = self.read_secret(
                client_name,
                ("password_file", &self.password_file),
                ("password_env", &self.password_env),
            )?;
            options = options.user_and_password(user.clone(), password.value.clone());
            secret = Some(password);
        } else if self.nkey_seed_file.is_some() || self.nkey_seed_env.is_some() {
            let seed = self.read_secret(
                client_name,
                ("nkey_seed_file", &self.nkey_seed_file),
                ("nkey_seed_env", &self.nkey_seed_env),
            )?;
            options = options.nkey(seed.value.clone());
            secret = Some(seed);
        } else if let Some(path) = &self.creds_file {
            options = options
                .credentials_file(path)
                .await
                .map_err(|e| ConnectError::File {
                    client: client_name.to_string(),
                    setting: "creds_file",
                    path: path.clone(),
                    // async-nats' messages here name the file or the part that
                    // did not parse, never its content.
                    reason: e.to_string(),
                })?;
        }
        if let Some(ca) = &self.tls_ca_file {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert_file, &self.tls_key_file) {
            options = options
                .add_client_certificate(cert.clone(), key.clone())
                .require_tls(true);
        }
        if self.require_tls {
            options = options.require_tls(true);
        }
        if let Some(prefix) = &self.inbox_prefix {
            options = options.custom_inbox_prefix(prefix);
        }
        Ok((options, secret))
    }

    /// Reads a secret from whichever of the file or the variable is set
    /// (the checks in `problems` made sure exactly one is).
    fn read_secret(
        &self,
        client: &str,
        file: (&'static str, &Option<PathBuf>),
        env: (&'static str, &Option<String>),
    ) -> Result<Secret, ConnectError> {
        let value = match (file, env) {
            ((setting, Some(path)), _) => {
                read_secret_file(path).map_err(|reason| ConnectError::File {
                    client: client.to_string(),
                    setting,
                    path: path.clone(),
                    reason,
                })?
            }
            (_, (setting, Some(var))) => match std::env::var(var) {
                Ok(v) if !v.is_empty() => v,
                Ok(_) => {
                    return Err(self.env_error(client, setting, var, "is empty"));
                }
                Err(std::env::VarError::NotPresent) => {
                    return Err(self.env_error(client, setting, var, "is not set"));
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(self.env_error(client, setting, var, "is not UTF-8"));
                }
            },
            _ => unreachable!("problems() requires a file or a variable"),
        };
        Ok(Secret { value })
    }

    fn env_error(
        &self,
        client: &str,
        setting: &'static str,
        var: &str,
        reason: &str,
    ) -> ConnectError {
        ConnectError::Env {
            client: client.to_string(),
            setting,
            var: var.to_string(),
            reason: reason.to_string(),
        }
    }

    fn credentials_kind(&self) -> &'static str {
        if self.user.is_some() {
            "user/password"
        } else if self.nkey_seed_file.is_some() || self.nkey_seed_env.is_some() {
            "nkey seed"
        } else if self.creds_file.is_some() {
            "creds file"
        } else {
            "none"
        }
    }
}

/// `a,b , c` -> `["a", "b", "c"]`.
pub fn split_urls(urls: &str) -> Vec<String> {
    urls.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .collect()
}

/// The file's first line. The error names what went wrong, not the content.
fn read_secret_file(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let value = text.lines().next().unwrap_or("").trim_end().to_string();
    if value.is_empty() {
        return Err("is empty".to_string());
    }
    Ok(value)
}

/// An error with its sources, `a: b: c`.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> NatsConnect {
        toml::from_str(text).expect("parses")
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<NatsConnect>("urls = []\npassword = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("password"), "{err}");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let c = parse(
            r#"
            urls = ["nats://u:hunter2@127.0.0.1:4222", "nats://127.0.0.1:4223"]
            user = "crm"
            password_file = "/nonexistent/crm.password"
            nkey_seed_env = "MDHUB_TEST_UNSET_SEED_VAR"
            tls_cert_file = "/nonexistent/client.crt"
            inbox_prefix = "_INBOX.>"
            "#,
        );
        let problems = c.problems();
        let all = problems.join("\n");
        assert!(all.contains("urls[0]: credentials in the URL"), "{all}");
        assert!(!all.contains("hunter2"), "{all}");
        assert!(
            all.contains("credentials: give one kind, not user/password and nkey seed"),
            "{all}"
        );
        assert!(
            all.contains("password_file: /nonexistent/crm.password is not a readable file"),
            "{all}"
        );
        assert!(
            all.contains("nkey_seed_env: environment variable MDHUB_TEST_UNSET_SEED_VAR"),
            "{all}"
        );
        assert!(all.contains("tls_cert_file and tls_key_file"), "{all}");
        assert!(all.contains("inbox_prefix"), "{all}");
        assert_eq!(problems.len(), 7, "{all}");
    }

    #[test]
    fn user_and_password_need_each_other() {
        let c = parse("urls = [\"nats://127.0.0.1:4222\"]\nuser = \"crm\"\n");
        assert_eq!(c.problems(), ["user: needs password_file or password_env"]);
        let c = parse("urls = [\"nats://127.0.0.1:4222\"]\npassword_env = \"PATH\"\n");
        assert_eq!(c.problems(), ["password_file/password_env: needs user"]);
    }

    #[test]
    fn plain_urls_are_valid() {
        let c = NatsConnect::with_urls("nats://127.0.0.1:4222, nats://127.0.0.1:4223");
        assert_eq!(c.urls.len(), 2);
        assert!(c.problems().is_empty(), "{:?}", c.problems());
    }

    #[tokio::test]
    async fn secrets_stay_out_of_debug_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3cret-value\n").unwrap();
        let c = NatsConnect {
            // Nothing listens on port 1: the connection fails after the
            // password was read.
            urls: vec!["nats://127.0.0.1:1".to_string()],
            user: Some("crm".to_string()),
            password_file: Some(file.clone()),
            ..Default::default()
        };
        let shown = format!("{c:?}");
        assert!(
            shown.contains("user/password") && !shown.contains("s3cret"),
            "{shown}"
        );
        let err = c.connect("test").await.unwrap_err().to_string();
        assert!(
            err.contains("127.0.0.1:1") && !err.contains("s3cret"),
            "{err}"
        );

        std::fs::write(&file, "\n").unwrap();
        let err = c.connect("test").await.unwrap_err().to_string();
        assert!(
            err.contains("password_file") && err.contains(&file.display().to_string()),
            "{err}"
        );
        assert!(err.contains("is empty"), "{err}");
    }
}
