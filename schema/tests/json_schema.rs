//! docs/change-event.schema.json is the published contract for producers.
//! This test fails when the Rust type and the document drift apart. Run it
//! with MDHUB_BLESS=1 to rewrite the document after a deliberate change: the
//! blessing run still fails when it had to rewrite the file, so that no run
//! passes a document that was stale when it started; the next run, with or
//! without MDHUB_BLESS, checks the rewritten file.

use std::path::{Path, PathBuf};

/// What the test concluded, apart from the filesystem.
#[derive(Debug, PartialEq)]
enum Check {
    UpToDate,
    Stale { rewritten: bool },
}

/// Compares the committed document with the generated one and, when
/// `bless`, writes the generated one over a stale document.
fn check(path: &Path, generated: &str, bless: bool) -> Check {
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    if committed == generated {
        return Check::UpToDate;
    }
    if bless {
        std::fs::write(path, generated)
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }
    Check::Stale { rewritten: bless }
}

#[test]
fn change_event_json_schema_in_docs_matches_the_code() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/change-event.schema.json");
    let generated = serde_json::to_string_pretty(&mdhub_schema::event::change_event_json_schema())
        .unwrap()
        + "\n";
    match check(&path, &generated, std::env::var_os("MDHUB_BLESS").is_some()) {
        Check::UpToDate => {}
        Check::Stale { rewritten: true } => panic!(
            "{} was out of date with ChangeEvent and has been rewritten: review the diff and run the test again",
            path.display()
        ),
        Check::Stale { rewritten: false } => panic!(
            "{} is out of date with ChangeEvent; rerun with MDHUB_BLESS=1 and review the diff",
            path.display()
        ),
    }
}

#[test]
fn blessing_a_stale_document_rewrites_it_and_still_fails_once() {
    // A scratch file of this process's own (the crate has no tempfile).
    let path = std::env::temp_dir().join(format!(
        "mdhub-json-schema-bless-{}.json",
        std::process::id()
    ));
    let generated = "{\"type\": \"object\"}\n";
    std::fs::write(&path, "{\"type\": \"string\"}\n").unwrap();
    assert_eq!(
        check(&path, generated, false),
        Check::Stale { rewritten: false }
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "{\"type\": \"string\"}\n",
        "without MDHUB_BLESS the document is left alone"
    );
    assert_eq!(
        check(&path, generated, true),
        Check::Stale { rewritten: true },
        "a blessing run over a stale document does not pass"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), generated);
    assert_eq!(check(&path, generated, true), Check::UpToDate);
    assert_eq!(check(&path, generated, false), Check::UpToDate);
    std::fs::remove_file(&path).unwrap();
}
