//! Convergence: hub state is a function of the set of events, not of the
//! order in which systems' events interleave on the bus.
//!
//! Each system's own events keep their order (a connector publishes in
//! order); across systems, any interleaving is possible. Edits are
//! concurrent unless an event carries `base`.

use std::collections::BTreeMap;
use std::sync::Arc;

use mdhub_hub::config::HubConfig;
use mdhub_hub::entry::LogPayload;
use mdhub_hub::golden::SourceKey;
use mdhub_hub::state::{Rules, State};
use mdhub_schema::{ChangeEvent, Op, SCHEMA_VERSION};
use proptest::prelude::*;
use serde_json::Value;
use uuid::Uuid;

const SYSTEMS: [&str; 3] = ["crm", "erp", "oa"];
const FIELDS: [&str; 4] = ["phone", "city", "company", "given_name"];

fn rules() -> Arc<Rules> {
    let config = HubConfig::parse(
        "[system.crm]\n[system.erp]\n[system.oa]\n[survivorship]\nsource_priority = [\"erp\", \"crm\", \"oa\"]\n",
        "test",
    )
    .unwrap();
    let models = config.load_models("test").unwrap();
    Arc::new(config.rules(models))
}

/// One planned edit, before ids and times are attached.
#[derive(Debug, Clone)]
struct Edit {
    customer: usize,
    field: usize,
    value: u8,
    minute: u8,
}

fn event(
    system: &str,
    customer: usize,
    n: usize,
    fields: BTreeMap<String, Value>,
    minute: u8,
) -> ChangeEvent {
    ChangeEvent {
        schema_version: SCHEMA_VERSION,
        event_id: Uuid::new_v5(
            &Uuid::NAMESPACE_OID,
            format!("{system}/{customer}/{n}").as_bytes(),
        ),
        system: system.to_string(),
        entity: "customer".to_string(),
        record_id: format!("{system}-{customer}"),
        op: Op::Upsert,
        fields,
        observed_at: time::macros::datetime!(2026-01-01 00:00 UTC)
            + time::Duration::minutes(minute as i64),
        base: None,
        caused_by: None,
    }
}

/// Per system, its ordered events: first a full record with the customer's
/// email (the match key), then single-field edits.
fn system_events(system: &str, customers: usize, edits: &[Edit]) -> Vec<ChangeEvent> {
    let mut out = Vec::new();
    for c in 0..customers {
        let fields = BTreeMap::from([
            (
                "email".to_string(),
                Value::String(format!("Customer{c}@Example.com")),
            ),
            (
                "family_name".to_string(),
                Value::String(format!("Family {system}")),
            ),
        ]);
        out.push(event(system, c, out.len(), fields, 0));
    }
    for e in edits {
        let c = e.customer % customers;
        let value = format!("{}-{}", FIELDS[e.field], e.value);
        let value = if FIELDS[e.field] == "phone" {
            format!("+49301{:04}", e.value)
        } else {
            value
        };
        let fields = BTreeMap::from([(FIELDS[e.field].to_string(), Value::String(value))]);
        out.push(event(system, c, out.len(), fields, e.minute));
    }
    out
}

/// Applies the systems' queues, taking the next event from the queue that
/// `picks` names (modulo the queues still non-empty).
fn run(queues: &[Vec<ChangeEvent>], picks: &[usize]) -> State {
    let mut state = State::new(rules());
    let mut cursors = vec![0usize; queues.len()];
    let mut seq = 0;
    let mut p = 0;
    loop {
        let open: Vec<usize> = (0..queues.len())
            .filter(|&q| cursors[q] < queues[q].len())
            .collect();
        if open.is_empty() {
            break;
        }
        let q = open[picks.get(p).copied().unwrap_or(0) % open.len()];
        p += 1;
        seq += 1;
        state
            .apply(seq, &LogPayload::Change(queues[q][cursors[q]].clone()))
            .unwrap();
        cursors[q] += 1;
    }
    state
}

fn golden_values(state: &State) -> Vec<(Uuid, BTreeMap<String, Value>)> {
    let mut values = Vec::new();
    state
        .for_each_record(|r| values.push((r.id, r.values.clone())))
        .unwrap();
    values
}

fn edit() -> impl Strategy<Value = Edit> {
    (0..3usize, 0..FIELDS.len(), any::<u8>(), 1..60u8).prop_map(
        |(customer, field, value, minute)| Edit {
            customer,
            field,
            value,
            minute,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_interleaving_gives_the_same_golden_state(
        customers in 1..4usize,
        edits in proptest::collection::vec(proptest::collection::vec(edit(), 0..12), 3),
        order_a in proptest::collection::vec(any::<usize>(), 0..80),
        order_b in proptest::collection::vec(any::<usize>(), 0..80),
    ) {
        let queues: Vec<Vec<ChangeEvent>> =
            SYSTEMS.iter().zip(&edits).map(|(s, e)| system_events(s, customers, e)).collect();
        let a = run(&queues, &order_a);
        let b = run(&queues, &order_b);
        prop_assert_eq!(a.golden_count(), customers, "one golden record per email");
        prop_assert_eq!(golden_values(&a), golden_values(&b));
        prop_assert_eq!(a.state_hash().unwrap(), b.state_hash().unwrap());
    }

    #[test]
    fn an_edit_on_top_of_another_supersedes_it_in_any_interleaving(
        crm_phone in any::<u8>(),
        erp_phone in any::<u8>(),
        erp_minute in 1..60u8,
        oa_edits in proptest::collection::vec(edit().prop_filter("not phone", |e| FIELDS[e.field] != "phone"), 0..6),
        order in proptest::collection::vec(any::<usize>(), 0..30),
    ) {
        // crm writes the phone late (minute 59); erp, having received that
        // version, overwrites it with an edit stamped earlier. oa edits
        // other fields concurrently.
        let crm = [
            event("crm", 0, 0, BTreeMap::from([
                ("email".to_string(), Value::String("ann@example.com".into())),
                ("phone".to_string(), Value::String(format!("+4930{crm_phone:04}"))),
            ]), 59),
        ];
        let mut erp = vec![event("erp", 0, 0, BTreeMap::from([
            ("email".to_string(), Value::String("ann@example.com".into())),
        ]), 0)];
        erp.push(event("erp", 0, 1, BTreeMap::from([
            ("phone".to_string(), Value::String(format!("+4931{erp_phone:04}"))),
        ]), erp_minute));
        let oa = system_events("oa", 1, &oa_edits);
        let oa: Vec<ChangeEvent> = oa.into_iter().map(|mut e| {
            e.fields.insert("email".into(), Value::String("ann@example.com".into()));
            e
        }).collect();

        // Interleave, but the based erp edit goes after crm's write, with the
        // version erp would have received at that point.
        let mut state = State::new(rules());
        let (mut ci, mut ei, mut oi, mut seq, mut p) = (0, 0, 0, 0u64, 0);
        let erp_source = SourceKey { system: "erp".into(), record_id: "erp-0".into() };
        while ci < crm.len() || ei < erp.len() || oi < oa.len() {
            let mut open = Vec::new();
            if ci < crm.len() { open.push(0) }
            if ei < erp.len() && (ei == 0 || ci == crm.len()) { open.push(1) }
            if oi < oa.len() { open.push(2) }
            let q = open[order.get(p).copied().unwrap_or(0) % open.len()];
            p += 1;
            seq += 1;
            let e = match q {
                0 => { ci += 1; crm[ci - 1].clone() }
                1 => {
                    ei += 1;
                    let mut e = erp[ei - 1].clone();
                    if ei == 2 {
                        let id = state.golden_of(&erp_source).unwrap().unwrap();
                        e.base = Some(state.record(id).unwrap().unwrap().version());
                    }
                    e
                }
                _ => { oi += 1; oa[oi - 1].clone() }
            };
            state.apply(seq, &LogPayload::Change(e)).unwrap();
        }
        prop_assert_eq!(state.golden_count(), 1);
        let mut first = None;
        state
            .for_each_record(|r| {
                first.get_or_insert_with(|| r.clone());
            })
            .unwrap();
        let r = first.unwrap();
        prop_assert_eq!(r.candidates["phone"].len(), 1, "no conflict");
        prop_assert_eq!(&r.values["phone"], &Value::String(format!("+4931{erp_phone:04}")));
    }
}
