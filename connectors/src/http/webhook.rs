//! The change-notification endpoint: an API that can call a webhook on
//! every change makes the source poll at once, instead of at the next poll
//! interval.
//!
//! `POST /webhook` with any body (the changed record, its id, nothing)
//! answers 202 and wakes the source. The body is not read for data: the
//! poll that follows reads the records from the API itself, so a forged
//! call can cause a poll, never a change. Many calls before the source
//! wakes count as one.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::contract::ConnectorError;

/// The path notifications are posted to.
pub const WEBHOOK_PATH: &str = "/webhook";

/// A listening webhook endpoint; stops listening when dropped.
#[derive(Debug)]
pub(crate) struct Webhook {
    notify: Arc<Notify>,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Webhook {
    /// Listens on `addr`. An address in use is `Unavailable` (the source
    /// this one replaces may still be closing); any other bind failure is
    /// a configuration error.
    pub(crate) async fn listen(addr: SocketAddr) -> Result<Self, ConnectorError> {
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            let msg = format!("http.webhook_listen {addr}: {e}");
            if e.kind() == std::io::ErrorKind::AddrInUse {
                ConnectorError::Unavailable(msg)
            } else {
                ConnectorError::Fatal(msg)
            }
        })?;
        let addr = listener.local_addr().unwrap_or(addr);
        let notify = Arc::new(Notify::new());
        let wake = notify.clone();
        let app = Router::new().route(
            WEBHOOK_PATH,
            post(move || {
                let wake = wake.clone();
                async move {
                    wake.notify_one();
                    StatusCode::ACCEPTED
                }
            }),
        );
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!("http webhook on {addr} stopped: {e}");
            }
        });
        Ok(Webhook { notify, addr, task })
    }

    /// The address it listens on (the port chosen, when the config said 0).
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Resolves once a notification has come (at once if one came since
    /// the last call).
    pub(crate) async fn notified(&self) {
        self.notify.notified().await;
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.task.abort();
    }
}
