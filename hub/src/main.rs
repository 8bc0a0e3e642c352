//! The `mdhub` command line.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};
use mdhub_hub::audit::command as audit;
use mdhub_hub::config::{token_hash, HubConfig};
use mdhub_hub::state::State;
use mdhub_hub::{demo, hub, serve};

#[derive(Parser)]
#[command(name = "mdhub", version, about = "Event-sourced master data hub")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the hub: ingest from NATS JetStream, publish golden updates, serve the HTTP API.
    Serve {
        /// Hub configuration file (see deploy/hub.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// NATS server URL (overrides nats_url in the config).
        #[arg(long, env = "MDHUB_NATS_URL")]
        nats: Option<String>,
        /// Data directory for the hub's store (overrides data_dir).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// HTTP API listen address (overrides listen).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Start even if MDHUB_IN was purged, expired or re-created past the
        /// position the hub has read up to (the skipped messages are lost to
        /// the hub; the gap is logged and counted in mdhub_input_gaps_total).
        #[arg(long)]
        accept_input_gap: bool,
    },
    /// Run connectors to business systems.
    Connector {
        #[command(subcommand)]
        command: ConnectorCommand,
    },
    /// Show two sample systems kept in sync through the hub.
    Demo {
        /// Run over this NATS server instead of the in-process bus.
        #[arg(long)]
        nats: Option<String>,
    },
    /// Check and replay the event log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Reports on matching.
    Match {
        #[command(subcommand)]
        command: MatchCommand,
    },
    /// Print the SHA-256 to put in a [[token]] entry for this bearer token.
    TokenHash { token: String },
    /// Print the HTTP API's OpenAPI description (`mdhub openapi > docs/openapi.json`).
    Openapi,
}

#[derive(Subcommand)]
enum ConnectorCommand {
    /// Run one connector: initial load, change capture and write-back, with
    /// retries while its system or the broker is away (see deploy/connectors/).
    Run {
        /// Connector configuration file.
        #[arg(long)]
        config: PathBuf,
        /// NATS server URL(s) (overrides [nats] urls in the config).
        #[arg(long, env = "MDHUB_NATS_URL")]
        nats: Option<String>,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify the log: its hash chain and event-id index, the signed
    /// checkpoints of its head (so that a log cut short or rewritten is
    /// caught), and that a replay gives the hub's state. Exits non-zero
    /// naming the first bad entry. Run it with the hub stopped, or on a copy.
    Verify {
        #[arg(long)]
        data_dir: PathBuf,
        /// Hub configuration (the rules the replay derives with).
        #[arg(long)]
        config: Option<PathBuf>,
        /// A checkpoint file to check the log against, e.g. the copy an
        /// auditor kept (repeatable; default: the data dir's own
        /// checkpoints.jsonl).
        #[arg(long)]
        checkpoints: Vec<PathBuf>,
        /// The signing key's public key, in hex or in a file (keygen's
        /// `.pub`). Without it, signatures are checked with the keys the
        /// checkpoints name.
        #[arg(long)]
        public_key: Option<String>,
        /// Skip the replay (it derives the whole log again).
        #[arg(long)]
        no_replay: bool,
    },
    /// Print a golden record's history as JSON: every log entry that
    /// changed it, with values before and after and who made the change
    /// (the API's `GET /v1/customers/{id}/history`). With the hub stopped.
    History {
        /// The golden id.
        id: uuid::Uuid,
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        data_dir: PathBuf,
        /// Steps after this log entry (a page's `next_after_seq`).
        #[arg(long, default_value_t = 0)]
        after_seq: u64,
        /// Steps to print.
        #[arg(long, default_value_t = mdhub_hub::audit::history::DEFAULT_LIMIT)]
        limit: usize,
    },
    /// Write a new Ed25519 key for signing checkpoints, and its public key
    /// beside it (`FILE.pub`).
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a checkpoint of the log's head now, with the hub stopped (a
    /// running hub: `POST /v1/admin/audit/checkpoints`). Appends it to the
    /// data dir's checkpoints.jsonl and prints it.
    Checkpoint {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        data_dir: PathBuf,
        /// The signing key (default: [audit] signing_key of the config).
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Rebuild the state from the log alone in a fresh directory and print the state hash.
    Replay {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        data_dir: PathBuf,
        /// Where to rebuild (default: a temporary directory, removed after):
        /// a data dir holding the log up to `--until` and its state.
        #[arg(long, alias = "out")]
        into: Option<PathBuf>,
        /// Replay the entries up to this log sequence only: the state as
        /// of then.
        #[arg(long)]
        until: Option<u64>,
    },
}

#[derive(Subcommand)]
enum MatchCommand {
    /// Estimate the u probabilities of the match rules from random pairs of
    /// the logged source records; prints `[[match.comparison]]` sections for
    /// the config. Run it on a copy or with the hub stopped.
    EstimateU {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        data_dir: PathBuf,
        /// Random pairs to draw.
        #[arg(long, default_value_t = 1_000_000)]
        pairs: u64,
    },
    /// Ask a running hub to train its match model now (admin API `POST
    /// /v1/admin/match/train`); the model becomes a log entry and decides
    /// the records that come or change after it. Prints the model's summary.
    Train {
        /// The hub's HTTP address.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Environment variable holding an admin token.
        #[arg(long, default_value = "MDHUB_TOKEN")]
        token_env: String,
    },
    /// Estimate u from random pairs and m and the prior by EM over the
    /// candidate pairs (records sharing a block key) of the logged source
    /// records; prints a `[match]` section with the prior and
    /// `[[match.comparison]]` sections with both, and the scores the prior
    /// asks for as comments. Run it on a copy or with the hub stopped.
    Estimate {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        data_dir: PathBuf,
        /// Random pairs to draw for u.
        #[arg(long, default_value_t = 1_000_000)]
        pairs: u64,
    },
    /// Show the match model in force (each comparison level's m, u and
    /// weight, the prior, the scores the link and review probabilities ask
    /// for, term frequencies) and sample decisions (links and open review
    /// tasks, each comparison's contribution) as text tables; with --html,
    /// also as one self-contained HTML page with charts. Run it on a copy
    /// or with the hub stopped.
    Report {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        data_dir: PathBuf,
        /// Also write the report as an HTML page to this file.
        #[arg(long)]
        html: Option<PathBuf>,
        /// Links to show, and open review tasks to show.
        #[arg(long, default_value_t = 10)]
        samples: usize,
    },
}

/// The state derived from the log in `data_dir` under the config at
/// `config` (the default config when `None`), for the offline commands.
fn derived_state(config: Option<&Path>, data_dir: &Path) -> anyhow::Result<State> {
    let (cfg, path) = load_config(config)?;
    let rules = serve::rules(&cfg, &path)?;
    eprintln!(
        "deriving the state from the log in {} ...",
        data_dir.display()
    );
    hub::state_of(data_dir, rules)
        .with_context(|| format!("reading the log in {}", data_dir.display()))
}

fn load_config(path: Option<&Path>) -> anyhow::Result<(HubConfig, String)> {
    match path {
        Some(p) => Ok((HubConfig::from_file(p)?, p.display().to_string())),
        None => Ok((HubConfig::default(), "(defaults)".to_string())),
    }
}

/// mimalloc: the hub allocates per event and glibc's malloc showed as a fifth
/// of the ingest profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    #[cfg(feature = "failpoints")]
    mdhub_hub::failpoint::arm_from_env();
    match cli.command {
        Command::Serve {
            config,
            nats,
            data_dir,
            listen,
            accept_input_gap,
        } => {
            let (mut cfg, path) = load_config(config.as_deref())?;
            cfg.ingest.accept_input_gap = accept_input_gap;
            if nats.is_some() {
                cfg.nats_url = nats;
            }
            if let Some(d) = data_dir {
                cfg.data_dir = d;
            }
            if let Some(l) = listen {
                cfg.listen = l;
            }
            serve::serve(cfg, &path).await
        }
        Command::Connector {
            command: ConnectorCommand::Run { config, nats },
        } => mdhub_hub::connector_run::run(&config, nats).await,
        Command::Demo { nats } => demo::run(nats.as_deref()).await,
        Command::Audit { command } => match command {
            AuditCommand::Verify {
                data_dir,
                config,
                checkpoints,
                public_key,
                no_replay,
            } => {
                let (cfg, path) = load_config(config.as_deref())?;
                let rules = serve::rules(&cfg, &path)?;
                let options = audit::VerifyOptions {
                    checkpoints,
                    public_key,
                    replay: !no_replay,
                };
                audit::verify(&data_dir, &options, &cfg, config.is_some(), rules)
            }
            AuditCommand::Keygen { out } => audit::keygen(&out),
            AuditCommand::History {
                id,
                config,
                data_dir,
                after_seq,
                limit,
            } => {
                let (cfg, path) = load_config(config.as_deref())?;
                let rules = serve::rules(&cfg, &path)?;
                audit::history(&data_dir, id, after_seq, limit, &cfg, rules)
            }
            AuditCommand::Checkpoint {
                config,
                data_dir,
                key,
            } => {
                let (cfg, path) = load_config(config.as_deref())?;
                let rules = serve::rules(&cfg, &path)?;
                let key = key.or_else(|| cfg.audit.signing_key.clone()).context(
                    "no signing key: pass --key FILE or set [audit] signing_key in the config",
                )?;
                audit::checkpoint(&data_dir, &key, &cfg, rules)
            }
            AuditCommand::Replay {
                config,
                data_dir,
                into,
                until,
            } => {
                let (cfg, path) = load_config(config.as_deref())?;
                let rules = serve::rules(&cfg, &path)?;
                let tmp = tempfile::tempdir()?;
                let target = into.unwrap_or_else(|| tmp.path().join("replay"));
                let (entries, hash) = hub::rebuild(&data_dir, &target, until, rules)?;
                println!("replayed {entries} entries\nstate hash {hash}");
                Ok(())
            }
        },
        Command::Match {
            command:
                MatchCommand::EstimateU {
                    config,
                    data_dir,
                    pairs,
                },
        } => {
            let state = derived_state(config.as_deref(), &data_dir)?;
            eprintln!("drawing {pairs} random pairs ...");
            let estimates = state.resolver().estimate_u(pairs)?;
            print!(
                "{}",
                mdhub_hub::resolve::estimate::as_config(&estimates, &state.rules().matching)
            );
            Ok(())
        }
        Command::Match {
            command:
                MatchCommand::Estimate {
                    config,
                    data_dir,
                    pairs,
                },
        } => {
            let state = derived_state(config.as_deref(), &data_dir)?;
            eprintln!("drawing {pairs} random pairs, then EM over the candidate pairs ...");
            let (u, em, records) = state.resolver().estimate_m_u(pairs)?;
            print!(
                "{}",
                mdhub_hub::resolve::estimate::as_config_em(
                    &u,
                    &em,
                    records,
                    &state.rules().matching
                )
            );
            Ok(())
        }
        Command::Match {
            command: MatchCommand::Train { url, token_env },
        } => {
            let token = std::env::var(&token_env)
                .with_context(|| format!("{token_env} must hold an admin token of the hub"))?;
            let endpoint = format!("{}/v1/admin/match/train", url.trim_end_matches('/'));
            eprintln!("training the match model of the hub at {url} (ingest waits meanwhile) ...");
            let response = reqwest::Client::new()
                .post(&endpoint)
                .bearer_auth(token)
                .send()
                .await
                .with_context(|| format!("calling {endpoint}"))?;
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            anyhow::ensure!(status.is_success(), "{endpoint} answered {status}: {body}");
            println!("{body}");
            Ok(())
        }
        Command::Match {
            command:
                MatchCommand::Report {
                    config,
                    data_dir,
                    html,
                    samples,
                },
        } => {
            use mdhub_hub::resolve::report;
            let state = derived_state(config.as_deref(), &data_dir)?;
            let r = report::build(&state, samples)?;
            print!("{}", report::text(&r));
            if let Some(file) = html {
                std::fs::write(&file, report::html(&r))
                    .with_context(|| format!("writing {}", file.display()))?;
                eprintln!("wrote {}", file.display());
            }
            Ok(())
        }
        Command::TokenHash { token } => {
            println!("{}", token_hash(&token));
            Ok(())
        }
        Command::Openapi => {
            print!("{}", mdhub_hub::api::openapi_json());
            Ok(())
        }
    }
}
