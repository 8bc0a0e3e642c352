//! Waiting on a condition with a deadline: tests never sleep and hope.
//!
//! Every function polls its condition about every [`POLL_INTERVAL`] until it
//! holds or the deadline passes; on timeout the error names what was awaited
//! (and, for [`wait_for`], the last error the condition returned). The
//! condition is always checked at least once, and once more at the deadline.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::anyhow;

/// Time between two checks of a condition.
pub const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// Waits until `f()` resolves to `true`, checking about every 25 ms.
///
/// Errors with a message naming `what` if it is still `false` after `deadline`.
pub async fn wait_until<F, Fut>(what: &str, deadline: Duration, mut f: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    let end = start + deadline;
    loop {
        if f().await {
            return Ok(());
        }
        let now = Instant::now();
        if now >= end {
            return Err(anyhow!(
                "timed out after {:.1?} waiting for {what}",
                start.elapsed()
            ));
        }
        tokio::time::sleep(POLL_INTERVAL.min(end - now)).await;
    }
}

/// Blocking variant of [`wait_until`] for code outside an async runtime (or
/// harness code that must not need one). Sleeps the current thread between
/// checks.
pub fn wait_until_blocking<F>(what: &str, deadline: Duration, mut f: F) -> anyhow::Result<()>
where
    F: FnMut() -> bool,
{
    let start = Instant::now();
    let end = start + deadline;
    loop {
        if f() {
            return Ok(());
        }
        let now = Instant::now();
        if now >= end {
            return Err(anyhow!(
                "timed out after {:.1?} waiting for {what}",
                start.elapsed()
            ));
        }
        std::thread::sleep(POLL_INTERVAL.min(end - now));
    }
}

/// Waits until `f()` resolves to `Ok(Some(value))` and returns the value.
///
/// `Ok(None)` and `Err(_)` both mean "not yet": the condition is retried (a
/// server that is still starting typically answers with an error). On timeout
/// the error names `what` and carries the last error seen, if any.
pub async fn wait_for<T, F, Fut>(what: &str, deadline: Duration, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let start = Instant::now();
    let end = start + deadline;
    let mut last_err: Option<anyhow::Error> = None;
    loop {
        match f().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
        let now = Instant::now();
        if now >= end {
            return Err(timeout_error(what, start, last_err));
        }
        tokio::time::sleep(POLL_INTERVAL.min(end - now)).await;
    }
}

/// Blocking variant of [`wait_for`].
pub fn wait_for_blocking<T, F>(what: &str, deadline: Duration, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> anyhow::Result<Option<T>>,
{
    let start = Instant::now();
    let end = start + deadline;
    let mut last_err: Option<anyhow::Error> = None;
    loop {
        match f() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
        let now = Instant::now();
        if now >= end {
            return Err(timeout_error(what, start, last_err));
        }
        std::thread::sleep(POLL_INTERVAL.min(end - now));
    }
}

fn timeout_error(what: &str, start: Instant, last_err: Option<anyhow::Error>) -> anyhow::Error {
    let msg = format!("timed out after {:.1?} waiting for {what}", start.elapsed());
    match last_err {
        Some(e) => e.context(msg),
        None => anyhow!(msg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn wait_until_succeeds_once_condition_holds() {
        let n = AtomicU32::new(0);
        wait_until("counter reaches 3", Duration::from_secs(5), || async {
            n.fetch_add(1, Ordering::SeqCst) + 1 >= 3
        })
        .await
        .unwrap();
        assert_eq!(n.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn wait_until_times_out_naming_what() {
        let start = Instant::now();
        let err = wait_until("the impossible", Duration::from_millis(100), || async {
            false
        })
        .await
        .unwrap_err();
        assert!(start.elapsed() >= Duration::from_millis(100));
        assert!(start.elapsed() < Duration::from_secs(2));
        assert!(err.to_string().contains("the impossible"), "{err}");
    }

    #[tokio::test]
    async fn wait_for_returns_value_and_reports_last_error() {
        let n = AtomicU32::new(0);
        let v = wait_for("value", Duration::from_secs(5), || async {
            let i = n.fetch_add(1, Ordering::SeqCst);
            match i {
                0 => Err(anyhow!("not ready")),
                1 => Ok(None),
                _ => Ok(Some(i * 10)),
            }
        })
        .await
        .unwrap();
        assert_eq!(v, 20);

        let err = wait_for::<(), _, _>("never", Duration::from_millis(60), || async {
            Err(anyhow!("connection refused"))
        })
        .await
        .unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("never") && text.contains("connection refused"),
            "{text}"
        );
    }

    #[test]
    fn blocking_variants() {
        let mut n = 0;
        wait_until_blocking("n reaches 2", Duration::from_secs(5), || {
            n += 1;
            n >= 2
        })
        .unwrap();
        assert_eq!(n, 2);
        let err = wait_for_blocking::<u8, _>("nothing", Duration::from_millis(50), || Ok(None))
            .unwrap_err();
        assert!(err.to_string().contains("nothing"));
    }
}
