//! Automerge 0.6 (the version the hub uses) against 0.12 (the newest), on
//! the hub's golden-record workload, in one run: the hot path's budget
//! assumes 0.6 runs the ingest prototype 2.2x faster than 0.12; this checks
//! it.
//!
//! The workload is the one `GoldenRecord::write` does per change event,
//! with hot documents in memory: 200,000 events over 20,000 customers from
//! 3 systems (one actor each); per event, set the system's actor, open a
//! transaction (at the current heads; every tenth at the system's own last
//! change, as a stale `base` makes the hub do), put 5 fields, commit with
//! the event's time, then read every written field's concurrent values
//! (`get_all`, the conflict candidates). Then save and load every document.
//! Rounds alternate which version runs first (0.6 then 0.12 in odd rounds,
//! 0.12 then 0.6 in even ones), so that neither always runs on a warmer or
//! a more fragmented heap; the report gives each round's figures and the
//! median ratio (of an even count of rounds, the mean of the middle two).
//!
//! Run: `cargo bench -p mdhub-tests --bench automerge_versions`
//! (`MDHUB_AM_EVENTS`, `MDHUB_AM_CUSTOMERS`, `MDHUB_AM_ROUNDS` override
//! 200000, 20000, 3).

use mdhub_tests::bench_stats::median;
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SYSTEMS: [&str; 3] = ["crm", "erp", "oa"];
const FIELDS: [&str; 5] = ["given_name", "family_name", "email", "phone", "city"];

struct Figures {
    /// Events per second of the write path.
    write_rate: f64,
    /// Documents saved and loaded again per second.
    save_load_rate: f64,
}

/// The same workload against one automerge version: the two crates have
/// the same API for what the hub uses, so one body serves both.
macro_rules! workload {
    ($name:ident, $am:ident, $open_at:ident) => {
        fn $name(events: usize, customers: usize) -> Figures {
            use $am::transaction::{CommitOptions, Transactable};
            use $am::{ActorId, Automerge, ChangeHash, ReadDoc, ScalarValue, ROOT};

            let actors: Vec<ActorId> = SYSTEMS
                .iter()
                .map(|s| ActorId::from(s.as_bytes()))
                .collect();
            let mut docs: Vec<Automerge> = (0..customers).map(|_| Automerge::new()).collect();
            // Each system's last change per customer.
            let mut own_last: Vec<[Option<ChangeHash>; 3]> = vec![[None; 3]; customers];
            let start = Instant::now();
            let mut read = 0usize;
            for i in 0..events {
                let customer = (i * 7919) % customers;
                let system = i % SYSTEMS.len();
                let doc = &mut docs[customer];
                doc.set_actor(actors[system].clone());
                let stale = match own_last[customer][system] {
                    Some(h) if i % 10 == 0 && doc.get_heads() != vec![h] => Some(h),
                    _ => None,
                };
                let mut tx = match stale {
                    Some(h) => $open_at(doc, &[h]),
                    None => doc.transaction(),
                };
                for (f, field) in FIELDS.iter().enumerate() {
                    let value = format!(
                        "{{\"value\":\"{field}-{}\",\"system\":\"{}\",\"event\":{i}}}",
                        (i / 3 + f) % 17,
                        SYSTEMS[system]
                    );
                    tx.put(ROOT, *field, ScalarValue::Str(value.into()))
                        .expect("put on the root map");
                }
                let (hash, _) = tx.commit_with(CommitOptions::default().with_time(i as i64));
                own_last[customer][system] = hash;
                for field in FIELDS {
                    read += doc.get_all(ROOT, field).expect("get_all").len();
                }
            }
            let write = start.elapsed();
            assert!(read >= events * FIELDS.len(), "every field read back");

            let start = Instant::now();
            for doc in &docs {
                let bytes = doc.save();
                let loaded = Automerge::load(&bytes).expect("load what was saved");
                assert_eq!(loaded.get_heads(), doc.get_heads(), "same document");
            }
            let save_load = start.elapsed();
            Figures {
                write_rate: events as f64 / write.as_secs_f64(),
                save_load_rate: customers as f64 / save_load.as_secs_f64(),
            }
        }
    };
}

/// A transaction at older heads: 0.12 made this fallible (a patch log of
/// another document); the null log belongs to any.
fn at_0_6<'a>(
    doc: &'a mut automerge::Automerge,
    heads: &[automerge::ChangeHash],
) -> automerge::transaction::Transaction<'a> {
    doc.transaction_at(automerge::PatchLog::null(), heads)
}

fn at_0_12<'a>(
    doc: &'a mut automerge_0_12::Automerge,
    heads: &[automerge_0_12::ChangeHash],
) -> automerge_0_12::transaction::Transaction<'a> {
    doc.transaction_at(automerge_0_12::PatchLog::null(), heads)
        .expect("the null patch log fits any document")
}

workload!(run_0_6, automerge, at_0_6);
workload!(run_0_12, automerge_0_12, at_0_12);

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name}: a number")))
        .unwrap_or(default)
}

fn main() {
    let events = env_usize("MDHUB_AM_EVENTS", 200_000);
    let customers = env_usize("MDHUB_AM_CUSTOMERS", 20_000);
    let rounds = env_usize("MDHUB_AM_ROUNDS", 3).max(1);
    println!("== Automerge 0.6 vs 0.12: {events} events, {customers} customers, 3 actors");
    let (mut write_ratios, mut save_ratios) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let t = Instant::now();
        let old_first = !round.is_multiple_of(2);
        let (old, new) = if old_first {
            let old = run_0_6(events, customers);
            (old, run_0_12(events, customers))
        } else {
            let new = run_0_12(events, customers);
            (run_0_6(events, customers), new)
        };
        let took: Duration = t.elapsed();
        println!(
            "  round {round} ({}): write path 0.6 {:.0} ev/s, 0.12 {:.0} ev/s ({:.2}x); \
             save+load 0.6 {:.0} docs/s, 0.12 {:.0} docs/s ({:.2}x)  [{:.0} s]",
            if old_first { "0.6 first" } else { "0.12 first" },
            old.write_rate,
            new.write_rate,
            old.write_rate / new.write_rate,
            old.save_load_rate,
            new.save_load_rate,
            old.save_load_rate / new.save_load_rate,
            took.as_secs_f64()
        );
        write_ratios.push(old.write_rate / new.write_rate);
        save_ratios.push(old.save_load_rate / new.save_load_rate);
    }
    println!(
        "  median of {rounds} round(s){}: 0.6 is {:.2}x the rate of 0.12 on the write path, {:.2}x on save+load",
        if rounds.is_multiple_of(2) {
            " (an even count: the mean of the middle two)"
        } else {
            ""
        },
        median(write_ratios),
        median(save_ratios)
    );
}
