//! A connector's counters, served as Prometheus text on `/metrics` by
//! `mdhub connector run`. Plain atomics rather than the global `metrics`
//! recorder, so several connectors in one process (tests, the demo) keep
//! their own figures.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::{extract::State, routing::get, Router};

#[derive(Debug, Default)]
pub struct ConnectorMetrics {
    /// Change events published (captured changes and insert links).
    pub events_captured: AtomicU64,
    /// Captured changes dropped as the echo of the connector's own write.
    pub echoes_suppressed: AtomicU64,
    /// Golden updates applied to the system.
    pub updates_applied: AtomicU64,
    /// Records the connector could not map or the system refused; each is
    /// logged with its key and written to the reject file.
    pub records_rejected: AtomicU64,
    /// Failures of the system or the broker (each followed by a retry).
    pub errors: AtomicU64,
    /// Rows of the initial load published so far.
    pub load_rows: AtomicU64,
    /// 1 once the initial load is done (or was done before a restart).
    pub load_done: AtomicU64,
    /// 1 while change capture is connected to the system, else 0.
    pub source_up: AtomicU64,
    /// 1 while write-back is connected to the system, else 0.
    pub sink_up: AtomicU64,
    /// Capture lag in milliseconds: how long ago the last published
    /// transaction was committed in the system, at the time it was published.
    pub lag_ms: AtomicU64,
}

impl ConnectorMetrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn set(gauge: &AtomicU64, v: u64) {
        gauge.store(v, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// The figures in Prometheus' text format, labelled with the system.
    pub fn render(&self, system: &str) -> String {
        let rows: [(&str, &str, &str, u64); 10] = [
            (
                "mdhub_connector_events_captured_total",
                "counter",
                "Change events published.",
                Self::get(&self.events_captured),
            ),
            (
                "mdhub_connector_echoes_suppressed_total",
                "counter",
                "Captured changes dropped as echoes of the connector's own writes.",
                Self::get(&self.echoes_suppressed),
            ),
            (
                "mdhub_connector_updates_applied_total",
                "counter",
                "Golden updates applied to the system.",
                Self::get(&self.updates_applied),
            ),
            (
                "mdhub_connector_records_rejected_total",
                "counter",
                "Records that could not be mapped or were refused by the system.",
                Self::get(&self.records_rejected),
            ),
            (
                "mdhub_connector_errors_total",
                "counter",
                "Failures of the system or the broker, each followed by a retry.",
                Self::get(&self.errors),
            ),
            (
                "mdhub_connector_load_rows_total",
                "counter",
                "Rows of the initial load published.",
                Self::get(&self.load_rows),
            ),
            (
                "mdhub_connector_load_done",
                "gauge",
                "1 once the initial load is complete.",
                Self::get(&self.load_done),
            ),
            (
                "mdhub_connector_source_up",
                "gauge",
                "1 while change capture is connected.",
                Self::get(&self.source_up),
            ),
            (
                "mdhub_connector_sink_up",
                "gauge",
                "1 while write-back is connected.",
                Self::get(&self.sink_up),
            ),
            (
                "mdhub_connector_lag_seconds",
                "gauge",
                "Age of the last published transaction when it was published.",
                0,
            ),
        ];
        let label = system.replace('\\', "\\\\").replace('"', "\\\"");
        let mut out = String::new();
        for (name, kind, help, value) in rows {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            if name == "mdhub_connector_lag_seconds" {
                let secs = Self::get(&self.lag_ms) as f64 / 1000.0;
                let _ = writeln!(out, "{name}{{system=\"{label}\"}} {secs}");
            } else {
                let _ = writeln!(out, "{name}{{system=\"{label}\"}} {value}");
            }
        }
        out
    }
}

/// Serves `GET /metrics` on `addr` in a task of its own; returns the
/// address it listens on (a port 0 is chosen by the system).
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<ConnectorMetrics>,
    system: String,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(render))
        .with_state((metrics, system));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(bound)
}

async fn render(State((metrics, system)): State<(Arc<ConnectorMetrics>, String)>) -> String {
    metrics.render(&system)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_figure_with_the_system_label() {
        let m = ConnectorMetrics::default();
        ConnectorMetrics::add(&m.events_captured, 3);
        ConnectorMetrics::set(&m.lag_ms, 1500);
        let text = m.render("erp");
        assert!(text.contains("mdhub_connector_events_captured_total{system=\"erp\"} 3\n"));
        assert!(text.contains("mdhub_connector_lag_seconds{system=\"erp\"} 1.5\n"));
        assert!(text.contains("mdhub_connector_echoes_suppressed_total{system=\"erp\"} 0\n"));
        assert_eq!(text.matches("# TYPE").count(), 10);
    }
}
