//! Entity resolution on the generator's default profile: pairwise precision,
//! recall and F1 of the hub's clusters against the ground truth.

use mdhub_hub::config::HubConfig;
use mdhub_tests::er_generator::{clusters, derive, generate, pairwise_f1, Profile, SYSTEM_REGIONS};

/// The hub config for the generator's systems, with their phone regions.
fn er_config() -> HubConfig {
    let mut toml = String::new();
    for (system, region) in SYSTEM_REGIONS {
        toml.push_str(&format!("[system.{system}]\nregion = \"{region}\"\n"));
    }
    HubConfig::parse(&toml, "er-test").expect("valid config")
}

#[test]
fn the_default_profile_is_matched_with_f1_of_at_least_0_95() {
    let data = generate(&Profile::default_profile(4_000));
    let config = er_config();
    let state = derive(&config, "er-test", &data.events);
    let predicted = clusters(&state, &data.truth);
    assert_eq!(predicted.len(), data.truth.len(), "every record is linked");
    let score = pairwise_f1(&data.truth, &predicted);
    eprintln!(
        "{} records: precision {:.4}, recall {:.4}, F1 {:.4} ({} true pairs, {} predicted, {} correct); {} review tasks, {} merges prevented",
        data.events.len(),
        score.precision,
        score.recall,
        score.f1,
        score.true_pairs,
        score.predicted_pairs,
        score.correct_pairs,
        state.review_tasks().count(),
        state.resolver().merges_prevented(),
    );
    assert!(score.f1 >= 0.95, "F1 {:.4} below 0.95", score.f1);
}

/// Accounts that differ only in a number ("Zoë7 O'Brien-7" and "Zoë17
/// O'Brien-17", customer7@ and customer17@, all in one town), sent by three
/// systems, two of them without the e-mail: each account's three records
/// are one customer, and no two accounts are. Test data and system users
/// look like this; a fuzzy name comparison must not join them.
#[test]
fn numbered_accounts_in_one_town_stay_apart() {
    use std::collections::BTreeMap;

    use mdhub_schema::{ChangeEvent, Op, SCHEMA_VERSION};
    use serde_json::json;
    use time::OffsetDateTime;
    use uuid::Uuid;

    let mut events = Vec::new();
    let mut truth = BTreeMap::new();
    for system in ["erp", "crm", "oa"] {
        for n in 0..2_000u64 {
            let mut fields = mdhub_schema::event::Fields::new();
            fields.insert("given_name".into(), json!(format!("Zoë{n}")));
            fields.insert("family_name".into(), json!(format!("O'Brien-{n}")));
            fields.insert("city".into(), json!("Start"));
            if system == "erp" {
                fields.insert("email".into(), json!(format!("customer{n}@example.org")));
            }
            let record_id = format!("{system}-{n}");
            events.push(ChangeEvent {
                schema_version: SCHEMA_VERSION,
                event_id: Uuid::new_v5(&Uuid::NAMESPACE_OID, record_id.as_bytes()),
                system: system.into(),
                entity: "customer".into(),
                record_id: record_id.clone(),
                op: Op::Upsert,
                fields,
                observed_at: OffsetDateTime::UNIX_EPOCH,
                base: None,
                caused_by: None,
            });
            truth.insert((system.to_string(), record_id), n);
        }
    }
    let config = HubConfig::parse("[system.erp]\n[system.crm]\n[system.oa]\n", "numbered").unwrap();
    let state = derive(&config, "numbered", &events);
    let score = pairwise_f1(&truth, &clusters(&state, &truth));
    assert_eq!(score.precision, 1.0, "accounts joined: {score:?}");
    // Their sound keys are all alike (digits have no sound), so those
    // blocks are capped; the full-name key still brings each account's
    // records together.
    assert_eq!(score.recall, 1.0, "an account split: {score:?}");
}
