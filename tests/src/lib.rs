//! Test harness for mdhub's end-to-end suite and benchmarks.
//!
//! Layout:
//! - `nats`: starts real nats-server processes (one node, or a three-node
//!   cluster) from the installed binary on free loopback ports with temp dirs,
//!   stops them on drop.
//! - `postgres`, `mariadb`: throwaway PostgreSQL (wal_level=logical) and
//!   MariaDB (row binlog) servers from Debian's binaries, on free loopback
//!   ports with temp dirs, never the machine's own services.
//! - `json_server`: json-server 0.17.4 (a REST API over a JSON file, with
//!   an `updatedAt` stamped on every write) on a free loopback port, for
//!   the HTTP connector.
//! - `server_process`: the server child process those harnesses own.
//! - `hub_runner`: the hub in this process over NATS, the `mdhub serve`
//!   binary as a child process (for kill -9), and reference runs without NATS.
//! - `connector_process`: `mdhub connector run` as a child process (kill -9,
//!   SIGTERM, restart on the same state, its `/metrics` and log).
//! - `compliance`: the connector contract's shared compliance scenario,
//!   run by every connector through its `SystemUnderTest`.
//! - `systems`: real systems (Odoo on PostgreSQL, SuiteCRM on MariaDB, a
//!   REST API) with their connectors and their users' edits.
//! - `fixtures`: a deterministic multi-system customer workload with the
//!   golden values it must produce.
//! - `streams`: reading what a JetStream stream holds, for assertions.
//! - `wait`: waiting on a condition with a deadline (never sleep-and-hope).
//! - `ports`: free loopback ports.
//! - `bench_stats`: figures the benchmarks report (the median of rounds).
//! - `secure_nats`: nats-server with the shipped locked-down config
//!   (deploy/nats/secure/), TLS certificates and passwords made per test.

pub mod bench_stats;
pub mod compliance;
pub mod connector_process;
pub mod er_generator;
pub mod fixtures;
pub mod hub_runner;
pub mod json_server;
pub mod mariadb;
pub mod nats;
pub mod ports;
pub mod postgres;
pub mod public_sets;
pub mod secure_nats;
pub mod server_process;
pub mod set_pipeline;
pub mod streams;
pub mod systems;
pub mod wait;
