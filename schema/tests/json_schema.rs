//! docs/change-event.schema.json is the published contract for producers.
//! This test fails when the Rust type and the document drift apart; run it
//! with MDHUB_BLESS=1 to rewrite the document after a deliberate change.

use std::path::PathBuf;

#[test]
fn change_event_json_schema_in_docs_matches_the_code() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/change-event.schema.json");
    let generated = serde_json::to_string_pretty(&mdhub_schema::event::change_event_json_schema())
        .unwrap()
        + "\n";
    if std::env::var_os("MDHUB_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let published = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        published == generated,
        "{} is out of date with ChangeEvent; rerun with MDHUB_BLESS=1 and review the diff",
        path.display()
    );
}
