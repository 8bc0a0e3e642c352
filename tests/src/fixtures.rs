//! A deterministic customer workload over several systems, with the golden
//! values it must produce (ground truth computed independently of the hub's
//! code, from how the workload was generated).
//!
//! Shape: every customer is held by one to three systems (record id
//! `<system>-<n>`), entered separately with the email in different cases and
//! the phone in different formats; then edits of `phone`, `job_title` (both
//! `most_recent`) and `city` (`source_priority`) by the systems holding the
//! customer, with strictly increasing `observed_at`. No edit carries `base`,
//! so edits of one field by two systems are true conflicts.

use std::collections::BTreeMap;

use mdhub_schema::{ChangeEvent, Op, SCHEMA_VERSION};
use serde_json::Value;
use uuid::Uuid;

use crate::er_generator::rng::Rng;

/// Systems in order of trust (the hub config below lists them so).
pub const SYSTEMS: [&str; 3] = ["erp", "crm", "oa"];

/// The hub config the workload is meant for. It does not train a match
/// model by itself (`train_at = 0`): the tests that use it compare the
/// state of runs whose batches differ (a crash and restart against a clean
/// run), and an automatic training happens at a batch boundary, with an id
/// of its own. Training has tests of its own (`match_training`,
/// `reresolution`, `matching_pipeline`).
pub fn hub_config_toml() -> String {
    "[system.erp]\nregion = \"DE\"\n[system.crm]\nregion = \"DE\"\n[system.oa]\nregion = \"DE\"\n[survivorship]\nsource_priority = [\"erp\", \"crm\", \"oa\"]\n[match]\ntrain_at = 0\n".to_string()
}

pub struct Workload {
    pub events: Vec<ChangeEvent>,
    /// email (normalized) → field → expected golden value.
    pub expected: BTreeMap<String, BTreeMap<String, Value>>,
    /// email → expected links (system, record_id).
    pub links: BTreeMap<String, Vec<(String, String)>>,
}

const CITIES: [&str; 8] = [
    "Berlin",
    "Hamburg",
    "München",
    "Köln",
    "Frankfurt am Main",
    "Stuttgart",
    "Düsseldorf",
    "Leipzig",
];
const TITLES: [&str; 6] = [
    "Buyer",
    "Head of Purchasing",
    "CFO",
    "Office Manager",
    "Accountant",
    "Managing Director",
];

/// Which systems hold customer `c`: one to three of them.
fn holders(c: usize) -> Vec<usize> {
    match c % 4 {
        0 => vec![0, 1, 2],
        1 => vec![0, 1],
        2 => vec![1, 2],
        _ => vec![c % 3],
    }
}

fn phone_canonical(c: usize, k: u64) -> String {
    format!("+4930{:07}", (c as u64 * 7919 + k * 104_729) % 10_000_000)
}

/// Formats a canonical `+4930…` number the way system `s` stores phones.
fn phone_formatted(s: usize, canonical: &str) -> String {
    let digits = &canonical[5..];
    match s {
        0 => format!("+49 30 {digits}"),
        1 => format!("0049-30-{digits}"),
        _ => format!("+49 (30) {}-{}", &digits[..3], &digits[3..]),
    }
}

/// Fields every system sends with every change of customer `c`, the same
/// everywhere (connectors that send the record's key business fields along,
/// as many do): after the first statement the hub skips them as unchanged.
/// They bring events to the ~400 bytes of real change events.
fn context(c: usize) -> BTreeMap<String, Value> {
    let s = |v: String| Value::String(v);
    BTreeMap::from([
        (
            "company".into(),
            s(format!("Customer {c} Handelsgesellschaft mbH & Co. KG")),
        ),
        (
            "website".into(),
            // Each company its own domain, as real companies have: a domain
            // shared by hundreds of customers would make one oversize block.
            s(format!("https://www.customer{c}-handel.de/kontakt")),
        ),
        ("lang".into(), s("de_DE".into())),
        ("customer_type".into(), s("company".into())),
        ("tax_id".into(), s(format!("DE{:09}", 100_000_000 + c))),
    ])
}

/// `customers` customers, `total` events in all (at least one per holder
/// per customer), generated from `seed`.
pub fn workload(customers: usize, total: usize, seed: u64) -> Workload {
    let mut rng = Rng::seeded(seed);
    let t0 = time::macros::datetime!(2026-01-01 00:00 UTC);
    let mut tick = 0i64;
    let mut events = Vec::with_capacity(total);
    let mut expected: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    let mut links: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    // Last value per (customer, system) of the source_priority field city.
    let mut city_by_system: BTreeMap<(usize, usize), String> = BTreeMap::new();
    // Last (value, tick) per (customer, field, system) of most_recent fields.
    // A system re-stating its own last value changes nothing (the hub skips
    // it), so the tick stays that of the first statement.
    let mut recent: BTreeMap<(usize, &str, usize), (String, i64)> = BTreeMap::new();
    let mut note = |c: usize, field: &'static str, h: usize, value: &str, tick: i64| {
        let slot = recent
            .entry((c, field, h))
            .or_insert_with(|| (String::new(), 0));
        if slot.0 != value {
            *slot = (value.to_string(), tick);
        }
    };
    let mut event_no = 0u64;
    let mut make = |system: usize, c: usize, fields: BTreeMap<String, Value>, at| {
        event_no += 1;
        ChangeEvent {
            schema_version: SCHEMA_VERSION,
            event_id: Uuid::new_v5(
                &Uuid::NAMESPACE_OID,
                format!("mdhub-workload/{seed}/{event_no}").as_bytes(),
            ),
            system: SYSTEMS[system].to_string(),
            entity: "customer".to_string(),
            record_id: format!("{}-{c}", SYSTEMS[system]),
            op: Op::Upsert,
            fields,
            observed_at: at,
            base: None,
            caused_by: None,
        }
    };
    let s = |v: &str| Value::String(v.to_string());

    for c in 0..customers {
        let email = format!("customer{c}@example{}.com", c % 97);
        let exp = expected.entry(email.clone()).or_default();
        exp.insert("email".into(), s(&email));
        exp.insert("given_name".into(), s(&format!("Given{c}")));
        exp.insert("family_name".into(), s(&format!("Family{c}")));
        exp.insert("country".into(), s("DE"));
        exp.insert("street".into(), s(&format!("Hauptstraße {}", c % 300 + 1)));
        exp.insert(
            "postal_code".into(),
            s(&format!("{:05}", 10_000 + c % 89_999)),
        );
        for &h in &holders(c) {
            let phone = phone_canonical(c, h as u64);
            let city = CITIES[(c + h) % CITIES.len()].to_string();
            let email_as_sent = if h == 1 {
                email.to_uppercase()
            } else {
                email.clone()
            };
            let fields = BTreeMap::from([
                ("email".into(), s(&email_as_sent)),
                ("given_name".into(), s(&format!("Given{c}"))),
                ("family_name".into(), s(&format!("Family{c}"))),
                ("phone".into(), s(&phone_formatted(h, &phone))),
                ("street".into(), s(&format!("Hauptstraße {}", c % 300 + 1))),
                (
                    "postal_code".into(),
                    s(&format!("{:05}", 10_000 + c % 89_999)),
                ),
                ("city".into(), s(&city)),
                ("country".into(), s(if h == 2 { "de" } else { "DE" })),
            ]);
            let mut fields = fields;
            fields.extend(context(c));
            tick += 1;
            events.push(make(h, c, fields, t0 + time::Duration::milliseconds(tick)));
            note(c, "phone", h, &phone, tick);
            city_by_system.insert((c, h), city);
            links
                .entry(email.clone())
                .or_default()
                .push((SYSTEMS[h].to_string(), format!("{}-{c}", SYSTEMS[h])));
        }
    }
    while events.len() < total {
        let c = rng.below(customers);
        let hs = holders(c);
        let h = hs[rng.below(hs.len())];
        tick += 1;
        let (field, value) = match rng.below(3) {
            0 => {
                let phone = phone_canonical(c, 3 + rng.below(1000) as u64);
                note(c, "phone", h, &phone, tick);
                ("phone", phone_formatted(h, &phone))
            }
            1 => {
                let title = rng.pick(&TITLES).to_string();
                note(c, "job_title", h, &title, tick);
                ("job_title", title)
            }
            _ => {
                let city = rng.pick(&CITIES).to_string();
                city_by_system.insert((c, h), city.clone());
                ("city", city)
            }
        };
        let mut fields = context(c);
        fields.insert(field.to_string(), s(&value));
        events.push(make(h, c, fields, t0 + time::Duration::milliseconds(tick)));
    }
    // most_recent fields: the latest statement among the systems' last ones.
    let mut latest: BTreeMap<(usize, &str), (i64, String)> = BTreeMap::new();
    for ((c, field, _), (value, at)) in recent {
        let slot = latest.entry((c, field)).or_insert((0, String::new()));
        if at > slot.0 {
            *slot = (at, value);
        }
    }
    for ((c, field), (_, value)) in latest {
        let email = format!("customer{c}@example{}.com", c % 97);
        expected
            .get_mut(&email)
            .expect("exists")
            .insert(field.to_string(), s(&value));
    }
    // city is source_priority: the most trusted holder's last value.
    for c in 0..customers {
        let email = format!("customer{c}@example{}.com", c % 97);
        let best = holders(c).into_iter().min().expect("a holder");
        expected
            .get_mut(&email)
            .expect("exists")
            .insert("city".into(), s(&city_by_system[&(c, best)]));
    }
    for l in links.values_mut() {
        l.sort();
    }
    Workload {
        events,
        expected,
        links,
    }
}

/// The subject a connector publishes an event on.
pub fn subject_of(e: &ChangeEvent) -> String {
    format!("mdhub.in.{}.{}", e.system, e.entity)
}
