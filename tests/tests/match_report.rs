//! `mdhub match report` on a log the hub wrote: the binary derives the
//! state, prints the model and sample decisions, and writes the HTML page.

use std::collections::BTreeMap;
use std::process::Command;

use mdhub_hub::config::HubConfig;
use mdhub_hub::hub::Hub;
use mdhub_hub::memory_bus::MemoryBus;
use mdhub_hub::serve::rules;
use mdhub_schema::{ChangeEvent, Limits, Op, SCHEMA_VERSION};
use mdhub_tests::hub_runner::mdhub_binary;
use serde_json::{json, Value};
use uuid::Uuid;

/// Links at 0.99, as the records (one link, one review) were chosen for.
const CONFIG: &str =
    "[system.crm]\nregion = \"DE\"\n[system.erp]\nregion = \"DE\"\n[match]\nlink_probability = 0.99\n";

fn event(n: u64, system: &str, record_id: &str, fields: Value) -> ChangeEvent {
    let fields: BTreeMap<String, Value> = fields
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    ChangeEvent {
        schema_version: SCHEMA_VERSION,
        event_id: Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("match-report/{n}").as_bytes()),
        system: system.into(),
        entity: "customer".into(),
        record_id: record_id.into(),
        op: Op::Upsert,
        fields,
        observed_at: time::macros::datetime!(2026-01-01 00:00 UTC)
            + time::Duration::minutes(n as i64),
        base: None,
        caused_by: None,
    }
}

#[test]
fn match_report_prints_the_model_and_writes_an_html_page() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let config_path = dir.path().join("hub.toml");
    std::fs::write(&config_path, CONFIG)?;

    // Anna in the CRM, Ana in the ERP (a link); Anne in another street (a
    // review task); a pair whose given name is markup.
    let anna = json!({"customer_type": "person", "given_name": "Anna", "family_name": "Schmidt",
        "birth_date": "1985-03-01", "street": "Hauptstraße 5", "postal_code": "10115",
        "city": "Berlin", "phone": "030 1234567"});
    let mut ana = anna.clone();
    ana["given_name"] = json!("Ana");
    let anne = json!({"customer_type": "person", "given_name": "Anne", "family_name": "Schmidt",
        "postal_code": "10115", "city": "Berlin", "street": "Torstraße 90"});
    let markup = json!({"customer_type": "person", "given_name": "<script>alert(1)</script>",
        "family_name": "Featherstonehaugh", "birth_date": "1970-07-07",
        "email": "x@example.org"});
    let events = [
        event(1, "crm", "c1", anna),
        event(2, "erp", "e1", ana),
        event(3, "erp", "e2", anne),
        event(4, "crm", "c3", markup.clone()),
        event(5, "erp", "e3", markup),
    ];
    {
        let config = HubConfig::parse(CONFIG, "test")?;
        let (mut hub, _) = Hub::open(&data, rules(&config, "test")?, Limits::default())?;
        let mut bus = MemoryBus::default();
        for e in &events {
            bus.publish(e);
        }
        bus.pump(&mut hub, 100)?;
        assert_eq!(hub.log().last_seq(), 5);
    }

    let html = dir.path().join("report.html");
    let out = Command::new(mdhub_binary()?)
        .args(["match", "report", "--config"])
        .arg(&config_path)
        .arg("--data-dir")
        .arg(&data)
        .arg("--html")
        .arg(&html)
        .args(["--samples", "5"])
        .env("RUST_LOG", "warn")
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "match report failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for comparison in [
        "email",
        "phone",
        "given_name",
        "family_name",
        "birth_date",
        "postal_code",
        "city",
        "street",
        "customer_type",
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.split_whitespace().next() == Some(comparison)),
            "{comparison} in\n{stdout}"
        );
    }
    assert!(
        stdout.contains("log entry 5, 5 source records, 3 golden records"),
        "{stdout}"
    );
    assert!(stdout.contains("Sample links: 2 of 2"), "{stdout}");
    assert!(stdout.contains("Open review tasks: 1 of 1"), "{stdout}");
    assert!(stdout.contains("crm/c1 ~ erp/e1"), "{stdout}");
    assert!(stdout.contains(": review\n"), "{stdout}");

    let page = std::fs::read_to_string(&html)?;
    assert!(page.contains("<svg"), "{page}");
    assert!(page.contains("Match weights chart"));
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!page.contains("<script"));

    // A second run prints the same report.
    let again = Command::new(mdhub_binary()?)
        .args(["match", "report", "--config"])
        .arg(&config_path)
        .arg("--data-dir")
        .arg(&data)
        .args(["--samples", "5"])
        .env("RUST_LOG", "warn")
        .output()?;
    assert_eq!(String::from_utf8_lossy(&again.stdout), stdout);
    Ok(())
}
