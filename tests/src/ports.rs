//! Free loopback TCP ports for servers started by the harness.
//!
//! A port is free if `127.0.0.1:PORT` can be bound a moment before it is
//! returned; the probe listener is dropped first, so another process could in
//! theory take it before our server binds it (the NATS harness retries start-up
//! with new ports when that happens). Within this process a port is never
//! handed out twice, so servers started by parallel tests do not collide.
//!
//! Ports are picked *below* the kernel's ephemeral range
//! (`/proc/sys/net/ipv4/ip_local_port_range`, usually 32768-60999) when there
//! is room: ports from `bind(127.0.0.1:0)` come from that range, which is also
//! where the local ends of outgoing connections come from, so a port handed
//! out that way can be taken by any client connection (a NATS route, a test's
//! reconnecting client) while its server is down for a restart test. If the
//! range leaves no room, or no such port is free, `bind(127.0.0.1:0)` is used.

use std::collections::hash_map::RandomState;
use std::collections::HashSet;
use std::hash::BuildHasher;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::{Mutex, OnceLock};

/// Lowest port the harness picks outside the ephemeral range.
const LOW: u16 = 10_000;

fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(|| Mutex::new(HashSet::new()))
}

/// `[LOW, start of the ephemeral range)`, if that is a usable span.
fn non_ephemeral_span() -> Option<(u16, u16)> {
    static SPAN: OnceLock<Option<(u16, u16)>> = OnceLock::new();
    *SPAN.get_or_init(|| {
        let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
        let lo: u16 = text.split_whitespace().next()?.parse().ok()?;
        (lo > LOW + 1000).then_some((LOW, lo))
    })
}

fn bindable(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// A loopback port that was free a moment ago and that this process has not
/// handed out before.
///
/// Panics if no free port can be found; a test cannot run without one.
pub fn free_port() -> u16 {
    try_free_port().expect("no free loopback TCP port")
}

/// Like [`free_port`], but returns an error instead of panicking.
pub fn try_free_port() -> anyhow::Result<u16> {
    let mut set = handed_out().lock().unwrap_or_else(|p| p.into_inner());

    if let Some((lo, hi)) = non_ephemeral_span() {
        let span = u64::from(hi - lo);
        let random = RandomState::new();
        for attempt in 0u64..200 {
            let offset = random.hash_one(attempt) % span;
            let port = lo + offset as u16;
            if !set.contains(&port) && bindable(port) {
                set.insert(port);
                return Ok(port);
            }
        }
    }

    let mut last_err = None;
    for _ in 0..1000 {
        match TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr()) {
            Ok(addr) => {
                if set.insert(addr.port()) {
                    return Ok(addr.port());
                }
            }
            Err(e) => last_err = Some(e),
        }
    }
    match last_err {
        Some(e) => Err(anyhow::anyhow!("no free loopback TCP port: {e}")),
        None => Err(anyhow::anyhow!(
            "no free loopback TCP port: the OS kept returning ports this process already handed out"
        )),
    }
}

/// `n` distinct free ports (see [`free_port`]).
pub fn free_ports(n: usize) -> Vec<u16> {
    (0..n).map(|_| free_port()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_and_bindable() {
        let ports = free_ports(200);
        let set: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(set.len(), ports.len(), "a port was handed out twice");
        for p in ports {
            assert_ne!(p, 0);
            assert!(bindable(p), "handed-out port {p} is not bindable");
            if let Some((lo, hi)) = non_ephemeral_span() {
                assert!(
                    (lo..hi).contains(&p),
                    "port {p} is not below the ephemeral range"
                );
            }
        }
    }
}
