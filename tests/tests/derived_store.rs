//! The derived state store and its cache of decoded golden records change
//! nothing that derivation derives: one log, made by a hub that matched,
//! trained, re-resolved and took edits made on top of the updates it sent
//! (and their echoes), derived again in memory and in redb, with a cache
//! that holds everything and with one that holds three records (so nearly
//! every record is written out, read back and changed again), gives the
//! same outbound messages entry by entry and the same state hash.
//!
//! And a start resumes from the store's last checkpoint: killed between
//! two checkpoints, the hub starts from the last one, derives the rest of
//! the log, and ends with the same state hash and the outbound messages not
//! acknowledged yet, none lost.

use std::collections::BTreeMap;
use std::sync::Arc;

use mdhub_hub::config::{HubConfig, StoreConfig, StoreKind};
use mdhub_hub::entry::LogPayload;
use mdhub_hub::hub::Hub;
use mdhub_hub::log::EventLog;
use mdhub_hub::memory_bus::MemoryBus;
use mdhub_hub::redb_store::RedbStorage;
use mdhub_hub::state::{Outbound, State};
use mdhub_hub::store::{MemoryStorage, Storage};
use mdhub_schema::normalize::normalize;
use mdhub_schema::{ChangeEvent, Limits, Op, SCHEMA_VERSION};
use mdhub_tests::er_generator::{generate_iter, systems_toml, Profile, SYSTEM_REGIONS};
use serde_json::{json, Value};
use uuid::Uuid;

fn config() -> HubConfig {
    HubConfig::parse(&systems_toml(), "derived-store").unwrap()
}

/// A log of `records` generator records, then, for every third update the
/// hub sent, an edit of the updated record on top of the update, and for
/// the others the update coming back (an echo). Returns the hub's data dir
/// and its state hash.
fn make_log(config: &HubConfig, records: usize) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let rules = Arc::new(config.rules(config.load_models("t").unwrap()));
    let (mut hub, _) = Hub::open(dir.path(), rules, Limits::default()).unwrap();
    let mut bus = MemoryBus::default();
    let profile = Profile::default_profile(records / 2);
    let events: Vec<ChangeEvent> = generate_iter(&profile)
        .map(|(e, _)| e)
        .take(records)
        .collect();
    let observed_at = events.last().unwrap().observed_at;
    for e in &events {
        bus.publish(e);
    }
    assert!(!bus.pump(&mut hub, 200).unwrap().degraded);

    let mut n = 0u64;
    for (system, _) in SYSTEM_REGIONS {
        for update in bus.take_updates(system) {
            let Some(record_id) = update.record_id.clone() else {
                continue;
            };
            n += 1;
            let mut fields = update.fields.clone();
            if n.is_multiple_of(3) {
                fields.insert("city".into(), json!(format!("Edited {n}")));
            }
            bus.publish(&ChangeEvent {
                schema_version: SCHEMA_VERSION,
                event_id: Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("edit/{n}").as_bytes()),
                system: system.to_string(),
                entity: update.entity.clone(),
                record_id,
                op: Op::Upsert,
                fields,
                observed_at: observed_at + time::Duration::seconds(n as i64),
                base: Some(update.version.clone()),
                caused_by: Some(update.update_id),
            });
        }
    }
    assert!(n > 100, "only {n} updates to edit");
    assert!(!bus.pump(&mut hub, 200).unwrap().degraded);
    let hash = hub.state().state_hash().unwrap();
    (dir, hash)
}

/// Derives the log in `dir` into `state`, returning each entry's outbound
/// messages.
fn derive(dir: &std::path::Path, state: &mut State) -> Vec<Vec<Outbound>> {
    let log = EventLog::open(dir).unwrap();
    let mut out = Vec::new();
    for entry in log.iter_from(1) {
        let entry = entry.unwrap();
        out.push(state.apply(entry.seq, &entry.payload).unwrap().outbound);
    }
    out
}

/// Checks `find_by_field` against a scan of every record: for each string
/// value a golden record holds, the index finds exactly the records that
/// hold it. Returns how many values were checked.
fn check_value_index(state: &State, label: &str) -> usize {
    let mut holders: BTreeMap<(String, String), Vec<Uuid>> = BTreeMap::new();
    state
        .for_each_record(|r| {
            for (field, value) in &r.values {
                if let Value::String(s) = value {
                    holders
                        .entry((field.clone(), s.clone()))
                        .or_default()
                        .push(r.id);
                }
            }
        })
        .unwrap();
    let mut checked = 0;
    for ((field, value), ids) in &holders {
        // A value kept as sent because it failed cleansing is not what a
        // search for it looks for (the search normalizes its value): only
        // values in their normal form are asked.
        let def = state.rules().models["customer"].field(field).unwrap();
        let own = Value::String(value.clone());
        if normalize(def, &own).ok().as_ref() != Some(&own) {
            continue;
        }
        let found = state
            .find_by_field("customer", field, value, usize::MAX)
            .unwrap_or_else(|e| panic!("{label}: {field}={value:?}: {e}"));
        assert_eq!(&found, ids, "{label}: records with {field}={value:?}");
        checked += 1;
    }
    checked
}

#[test]
fn the_store_and_its_cache_size_change_nothing_derived() {
    let config = config();
    let (dir, live_hash) = make_log(&config, 2_000);
    let log = EventLog::open(dir.path()).unwrap();
    let kinds = |p: fn(&LogPayload) -> bool| {
        log.iter_from(1)
            .filter(|e| p(&e.as_ref().unwrap().payload))
            .count()
    };
    assert!(
        kinds(|p| matches!(p, LogPayload::MatchModel(_))) >= 2,
        "trainings in the log"
    );
    assert!(
        kinds(|p| matches!(p, LogPayload::Regroup(_))) >= 2,
        "re-resolutions in the log"
    );
    drop(log);

    let rules = || Arc::new(config.rules(config.load_models("t").unwrap()));
    let memory = MemoryStorage::shared();
    let mut reference = State::open(rules(), memory.as_ref(), 1_000_000).unwrap();
    let expected = derive(dir.path(), &mut reference);
    assert_eq!(reference.state_hash().unwrap(), live_hash);
    assert!(check_value_index(&reference, "reference") > 5_000);

    let redb_dir = tempfile::tempdir().unwrap();
    let stores: Vec<(&str, Arc<dyn Storage>)> = vec![
        ("memory", MemoryStorage::shared()),
        (
            "redb",
            RedbStorage::open(&redb_dir.path().join("derived.redb")).unwrap(),
        ),
    ];
    for (name, storage) in stores {
        let mut tiny = State::open(rules(), storage.as_ref(), 3).unwrap();
        let got = derive(dir.path(), &mut tiny);
        assert_eq!(got.len(), expected.len());
        for (seq, (a, b)) in got.iter().zip(&expected).enumerate() {
            assert_eq!(
                a,
                b,
                "{name} store, 3 cached records: outbound of entry {}",
                seq + 1
            );
        }
        assert_eq!(tiny.state_hash().unwrap(), live_hash, "{name} store");
        assert_eq!(
            tiny.golden_count(),
            reference.golden_count(),
            "{name} store"
        );
        check_value_index(&tiny, name);
    }
}

/// A copy of the hub data dir `from` without its derived state, with
/// outbound messages acknowledged up to entry `published`.
fn copy_log(from: &std::path::Path, published: u64) -> tempfile::TempDir {
    /// Copies the tree `from` into `to`, but for the derived store.
    fn copy(from: &std::path::Path, to: &std::path::Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            if entry.file_name() == "derived.redb" {
                continue;
            }
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), &target).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    copy(from, dir.path());
    let log = EventLog::open(dir.path()).unwrap();
    log.marker("outbound_published_seq").set(published).unwrap();
    log.flush().unwrap();
    dir
}

#[test]
fn a_start_resumes_from_the_last_checkpoint_and_loses_no_outbound_message() {
    let config = config();
    let (dir, live_hash) = make_log(&config, 1_000);
    let rules = || Arc::new(config.rules(config.load_models("t").unwrap()));
    let mut reference = State::open(rules(), MemoryStorage::shared().as_ref(), 1_000_000).unwrap();
    let expected = derive(dir.path(), &mut reference);
    let entries = expected.len() as u64;
    // Small caches and checkpoints every 97 entries: records and blocks
    // go back and forth between cache, held writes and checkpoints.
    let store = StoreConfig {
        kind: StoreKind::Redb,
        cache_records: 5,
        checkpoint_entries: 97,
    };
    let open =
        |dir: &std::path::Path| Hub::open_with(dir, rules(), Limits::default(), &store).unwrap();
    // On the memory store (`MDHUB_STORE=memory`) nothing outlives the hub:
    // every start derives the whole log, to the same state.
    let persisted = store.kind().unwrap() != StoreKind::Memory;
    for published in [entries, entries * 2 / 3] {
        let unpublished: Vec<Outbound> = expected[published as usize..].concat();
        let copy = copy_log(dir.path(), published);

        // The first start derives the whole log, checkpointing every 97
        // entries up to the last one whose messages are acknowledged.
        let (hub, pending) = open(copy.path());
        assert_eq!(hub.started_from_seq(), 0);
        let last_checkpoint = published / 97 * 97;
        assert_eq!(hub.checkpoint_seq(), last_checkpoint);
        assert_eq!(pending, unpublished, "published up to {published}");
        assert_eq!(hub.state().state_hash().unwrap(), live_hash);
        // Dropped without a checkpoint, as a kill would: what derivation
        // held since the last checkpoint is lost.
        drop(hub);

        let (mut hub, pending) = open(copy.path());
        assert_eq!(
            hub.started_from_seq(),
            if persisted { last_checkpoint } else { 0 },
            "published up to {published}"
        );
        assert_eq!(
            pending, unpublished,
            "published up to {published}, after the kill"
        );
        assert_eq!(hub.state().state_hash().unwrap(), live_hash);
        assert_eq!(hub.state().golden_count(), reference.golden_count());
        check_value_index(hub.state(), "resumed");

        // A checkpoint at the last entry keeps the messages not yet
        // acknowledged: the next start derives nothing and sends them.
        hub.checkpoint().unwrap();
        drop(hub);
        let (hub, pending) = open(copy.path());
        assert_eq!(hub.started_from_seq(), if persisted { entries } else { 0 });
        assert_eq!(
            pending, unpublished,
            "published up to {published}, after a checkpoint"
        );
        assert_eq!(hub.state().state_hash().unwrap(), live_hash);
        check_value_index(hub.state(), "resumed at the end");
    }
}
