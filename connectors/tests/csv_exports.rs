//! CSV exports read from fixture files shaped like the real products'
//! exports, and the changes between two exports of the same system.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;

use mdhub_connectors::csv::{
    diff, read_export, Change, CsvError, CsvLayout, DateFormat, Export, LayoutError, RowError,
    Snapshot,
};
use time::macros::offset;

fn fixture(name: &str) -> File {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/csv")
        .join(name);
    File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn read(layout: &CsvLayout, name: &str) -> Export {
    read_export(layout, fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn lines_and_keys(export: &Export) -> Vec<(u64, &str)> {
    export
        .rows
        .iter()
        .map(|r| (r.line, r.key.as_str()))
        .collect()
}

fn broken_layout() -> CsvLayout {
    let mut layout = CsvLayout::generic("Kunden-Nr./ID");
    layout.dates.insert("Signed Up".into(), DateFormat::IsoDate);
    layout
}

#[test]
fn salesforce_export_with_bom_and_old_upper_case_headers_reads_api_names() {
    let export = read(
        &CsvLayout::salesforce_contacts(),
        "salesforce_contacts_2024-03-01.csv",
    );

    assert_eq!(
        export.headers,
        [
            "Id",
            "IsDeleted",
            "FirstName",
            "LastName",
            "Email",
            "MailingCity",
            "Birthdate",
            "Description",
            "CreatedDate",
            "LastModifiedDate"
        ],
        "the BOM is not part of the first header and upper-case headers take the API spelling"
    );
    assert!(export.rejected.is_empty(), "{:?}", export.rejected);
    assert_eq!(
        lines_and_keys(&export),
        [
            (2, "0035g00000AbCdEAAV"),
            (3, "0035g00000AbCdFAAV"),
            (6, "0035g00000AbCdGAAV"),
            (7, "0035g00000AbCdHAAV"),
        ]
    );
    let zoe = &export.rows[0].columns;
    assert_eq!(zoe["LastName"], "O'Brien, Jr.");
    assert_eq!(zoe["Description"], r#"Prefers "Dr." as title"#);
    assert_eq!(zoe["Birthdate"], "1984-02-29");
    assert_eq!(zoe["CreatedDate"], "2024-01-15T10:30:00.000Z");
    assert_eq!(
        zoe["LastModifiedDate"], "2024-03-01T06:00:00.000Z",
        "an offset date-time is normalized to UTC"
    );
    let jose = &export.rows[1].columns;
    assert_eq!(
        jose["Description"],
        "Line one\r\nline two, with a comma\r\nline three"
    );
    assert_eq!(jose["Birthdate"], "", "an empty date is unset, not invalid");
    let li = &export.rows[2].columns;
    assert_eq!(
        (li["FirstName"].as_str(), li["MailingCity"].as_str()),
        ("李", "北京")
    );
    assert_eq!(
        li["LastModifiedDate"], "2024-01-17T00:00:00.000Z",
        "+0000 is read like +00:00"
    );
    assert_eq!(
        export.rows[3].columns["CreatedDate"],
        "2024-01-18T09:15:30.250Z"
    );
    assert!(export.rows.iter().all(|r| !r.deleted));
}

#[test]
fn hubspot_export_with_localized_labels_and_dates_reads_in_the_account_offset() {
    let mut layout = CsvLayout::hubspot_contacts(offset!(+01:00));
    for (label, column) in [
        ("Datensatz-ID", "Record ID"),
        ("Vorname", "First Name"),
        ("Nachname", "Last Name"),
        ("E-Mail", "Email"),
        ("Erstellungsdatum", "Create Date"),
        ("Geburtsdatum", "Date of birth"),
    ] {
        layout.aliases.insert(label.into(), column.into());
    }
    layout.dates.insert(
        "Create Date".into(),
        DateFormat::LocalDateTime {
            pattern: "[day].[month].[year] [hour]:[minute]".into(),
        },
    );
    layout.dates.insert(
        "Date of birth".into(),
        DateFormat::Date {
            pattern: "[day].[month].[year]".into(),
        },
    );

    let export = read(&layout, "hubspot_contacts_de.csv");

    assert_eq!(
        export.headers,
        [
            "Record ID",
            "First Name",
            "Last Name",
            "Email",
            "Create Date",
            "Date of birth",
            "Stadt"
        ],
        "aliased labels take the layout's names; an unknown label stays as written"
    );
    assert!(export.rejected.is_empty(), "{:?}", export.rejected);
    assert_eq!(lines_and_keys(&export), [(2, "51"), (3, "1204")]);
    let jurgen = &export.rows[0].columns;
    assert_eq!(jurgen["Create Date"], "2024-03-12T08:14:00.000Z");
    assert_eq!(jurgen["Date of birth"], "1984-02-29");
    assert_eq!(jurgen["Last Name"], "Groß, Dr.");
    let ana = &export.rows[1].columns;
    assert_eq!(
        ana["Create Date"], "2023-12-31T23:30:00.000Z",
        "00:30 at +01:00 is the previous day in UTC"
    );
    assert_eq!(ana["First Name"], r#"Ana "Nani""#);
    assert_eq!(ana["Last Name"], "Lima/Souza");
}

#[test]
fn hubspot_preset_reads_english_labels_and_zone_less_date_times() {
    let file = "Record ID,First Name,Last Name,Create Date\n\
                7,Émile,\"Zola, fils\",2024-03-12 09:14\n";
    let layout = CsvLayout::hubspot_contacts(offset!(-05:00));

    let export = read_export(&layout, file.as_bytes()).unwrap();

    assert!(export.rejected.is_empty(), "{:?}", export.rejected);
    assert_eq!(lines_and_keys(&export), [(2, "7")]);
    assert_eq!(
        export.rows[0].columns["Create Date"],
        "2024-03-12T14:14:00.000Z"
    );
}

#[test]
fn later_export_emits_the_edit_the_new_row_the_removed_row_and_the_deleted_row() {
    let layout = CsvLayout::salesforce_contacts();
    let first = read(&layout, "salesforce_contacts_2024-03-01.csv");
    let imported = diff(&Snapshot::default(), &first);
    assert_eq!(
        imported.changes.len(),
        4,
        "a first import upserts every row"
    );
    assert!(imported.changes.iter().all(|c| matches!(
        c,
        Change::Upsert { changed, .. } if changed.len() == first.headers.len()
    )));
    // The connector keeps the snapshot on disk between imports.
    let stored = serde_json::to_string(&imported.next).unwrap();
    let previous: Snapshot = serde_json::from_str(&stored).unwrap();

    let second = read(&layout, "salesforce_contacts_2024-03-08.csv");
    let result = diff(&previous, &second);

    let ada = &second.rows[3];
    assert_eq!(ada.key, "0035g00000AbCdIAAV");
    assert_eq!(
        result.changes,
        [
            Change::Upsert {
                key: "0035g00000AbCdEAAV".into(),
                line: 2,
                changed: BTreeMap::from([
                    ("Email".into(), "zoe@example.ie".into()),
                    ("LastModifiedDate".into(), "2024-03-07T12:00:00.000Z".into()),
                ]),
            },
            Change::Upsert {
                key: ada.key.clone(),
                line: 7,
                changed: ada.columns.clone(),
            },
            Change::Delete {
                key: "0035g00000AbCdGAAV".into()
            },
            Change::Delete {
                key: "0035g00000AbCdHAAV".into()
            },
        ]
    );
    assert_eq!(
        result.unchanged, 1,
        "José's row, its date-time written with another offset, is unchanged"
    );
    assert_eq!(ada.columns["MailingCity"], "London, UK");
    assert_eq!(
        result.next.rows.keys().collect::<Vec<_>>(),
        [
            "0035g00000AbCdEAAV",
            "0035g00000AbCdFAAV",
            "0035g00000AbCdIAAV"
        ]
    );
    let again = diff(&result.next, &second);
    assert!(
        again.changes.is_empty(),
        "the same export twice emits nothing: {:?}",
        again.changes
    );
}

#[test]
fn broken_rows_are_each_rejected_with_line_and_reason_and_the_rest_are_read() {
    let export = read(&broken_layout(), "broken_rows.csv");

    let rejected: Vec<(u64, Option<&str>, &RowError)> = export
        .rejected
        .iter()
        .map(|r| (r.line, r.key.as_deref(), &r.reason))
        .collect();
    let column = |c: &str| c.to_owned();
    assert_eq!(
        rejected,
        [
            (
                3,
                Some("K/002"),
                &RowError::ColumnCount {
                    found: 3,
                    expected: 4
                }
            ),
            (
                4,
                Some("K/003"),
                &RowError::InvalidUtf8 {
                    column: column("Name")
                }
            ),
            (
                5,
                Some("K/004"),
                &RowError::InvalidDate {
                    column: column("Signed Up"),
                    expected: "yyyy-MM-dd"
                }
            ),
            (
                6,
                Some("K/001"),
                &RowError::DuplicateKey {
                    key: "K/001".into(),
                    first_line: 2
                }
            ),
            (
                7,
                None,
                &RowError::EmptyKey {
                    column: column("Kunden-Nr./ID")
                }
            ),
            (
                11,
                Some("K/007"),
                &RowError::InvalidDate {
                    column: column("Signed Up"),
                    expected: "yyyy-MM-dd"
                }
            ),
        ]
    );
    assert_eq!(
        lines_and_keys(&export),
        [(2, "K/001"), (8, r#"K/005 "quoted""#), (10, "K/006")],
        "every other row is read, the one after a multi-line field at its own line"
    );
    assert_eq!(export.rows[0].columns["Name"], "Ünal, Ayşe");
    assert_eq!(export.rows[1].columns["Name"], "Multi\nline, name");
    assert_eq!(export.rows[2].columns["Notes"], "a,b");
}

#[test]
fn rejection_reasons_name_columns_and_keys_but_no_other_values() {
    let export = read(&broken_layout(), "broken_rows.csv");

    let reasons: Vec<String> = export
        .rejected
        .iter()
        .map(|r| r.reason.to_string())
        .collect();
    assert_eq!(
        reasons,
        [
            "3 fields where the header has 4",
            "column Name is not valid UTF-8",
            "column Signed Up is not a valid date: expected yyyy-MM-dd",
            "key K/001 already appeared on line 2",
            "the key column Kunden-Nr./ID is empty",
            "column Signed Up is not a valid date: expected yyyy-MM-dd",
        ]
    );
}

#[test]
fn quoted_fields_with_newlines_and_commas_keep_line_numbers_right() {
    let mut layout = CsvLayout::generic("ID");
    layout.dates.insert("When".into(), DateFormat::IsoDate);

    let export = read(&layout, "multiline.csv");

    assert_eq!(
        lines_and_keys(&export),
        [(2, "€/1"), (5, "€/2"), (8, "€/4")]
    );
    assert_eq!(export.rows[0].columns["note"], "a\r\nb\r\n\"c\", d");
    assert_eq!(export.rows[2].columns["note"], ",\n,\n,");
    assert_eq!(export.rejected.len(), 1);
    assert_eq!(export.rejected[0].line, 6);
    assert_eq!(export.rejected[0].key.as_deref(), Some("€/3"));
    assert!(matches!(
        &export.rejected[0].reason,
        RowError::InvalidDate { column, .. } if column == "When"
    ));
}

#[test]
fn a_rejected_row_is_not_taken_for_a_delete() {
    let record = |name: &str| BTreeMap::from([("Name".to_owned(), name.to_owned())]);
    let previous = Snapshot {
        rows: BTreeMap::from([
            ("K/004".to_owned(), record("Dana")),
            ("K/999".to_owned(), record("Gone")),
        ]),
    };
    let export = read(&broken_layout(), "broken_rows.csv");

    let result = diff(&previous, &export);

    assert!(
        result
            .changes
            .iter()
            .all(|c| matches!(c, Change::Upsert { .. })),
        "K/004's row was rejected, and the empty-key row may be K/999: {:?}",
        result.changes
    );
    assert_eq!(result.deletes_withheld, 1);
    assert_eq!(result.next.rows["K/004"], record("Dana"));
    assert_eq!(result.next.rows["K/999"], record("Gone"));
}

#[test]
fn salesforce_is_deleted_row_for_an_unknown_key_emits_nothing() {
    let file = "\"Id\",\"IsDeleted\",\"LastName\"\n\"003000000000001AAA\",\"true\",\"Ng\"\n";

    let export = read_export(&CsvLayout::salesforce_contacts(), file.as_bytes()).unwrap();
    let result = diff(&Snapshot::default(), &export);

    assert!(export.rows[0].deleted);
    assert_eq!(result.changes, []);
    assert!(result.next.rows.is_empty());
}

#[test]
fn missing_key_column_names_the_header_looked_for_and_the_headers_found() {
    let file = "\u{feff}\"Email\",\"LastName\"\n\"a@example.com\",\"Ng\"\n";

    let error = read_export(&CsvLayout::salesforce_contacts(), file.as_bytes()).unwrap_err();

    match &error {
        CsvError::MissingKeyColumn { looked_for, found } => {
            assert_eq!(looked_for, "Id");
            assert_eq!(found, &["Email", "LastName"]);
        }
        other => panic!("expected a missing key column, got {other:?}"),
    }
    assert_eq!(
        error.to_string(),
        r#"no key column "Id" in the header; found ["Email", "LastName"]"#
    );
}

#[test]
fn generic_layout_with_semicolons_matches_its_key_header_case_insensitively() {
    let file = " kundennummer ;Ort\nÄ-1;\"Köln; Süd\"\n";
    let mut layout = CsvLayout::generic("KundenNummer");
    layout.delimiter = ';';

    let export = read_export(&layout, file.as_bytes()).unwrap();

    assert_eq!(export.headers, ["KundenNummer", "Ort"]);
    assert_eq!(lines_and_keys(&export), [(2, "Ä-1")]);
    assert_eq!(export.rows[0].columns["Ort"], "Köln; Süd");
}

#[test]
fn layout_from_config_reports_every_problem_at_once() {
    let config = r#"
        key_column = "Record ID"
        delimiter = "é"
        [dates."Create Date"]
        kind = "local_date_time"
        pattern = "[day].[month].[year] [hour"
    "#;
    let layout: CsvLayout = toml::from_str(config).unwrap();

    let errors = layout.validate().unwrap_err();

    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(errors.contains(&LayoutError::Delimiter('é')));
    assert!(errors.contains(&LayoutError::MissingOffset("Create Date".into())));
    assert!(errors
        .iter()
        .any(|e| matches!(e, LayoutError::Pattern { column, .. } if column == "Create Date")));
    assert!(matches!(
        read_export(&layout, "Record ID\n1\n".as_bytes()),
        Err(CsvError::Layout(e)) if e.len() == 3
    ));
    let typo = "key_column = \"Id\"\ndelimeter = \";\"\n";
    assert!(
        toml::from_str::<CsvLayout>(typo).is_err(),
        "an unknown key is refused"
    );
}

#[test]
fn presets_round_trip_through_config() {
    for layout in [
        CsvLayout::salesforce_contacts(),
        CsvLayout::hubspot_contacts(offset!(+05:30)),
        CsvLayout::generic("id"),
    ] {
        layout.validate().unwrap();
        let text = toml::to_string(&layout).unwrap();
        assert_eq!(toml::from_str::<CsvLayout>(&text).unwrap(), layout);
    }
    assert_eq!(
        CsvLayout::hubspot_contacts(offset!(+05:30))
            .utc_offset
            .as_deref(),
        Some("+05:30")
    );
}

#[test]
fn blank_lines_between_rows_count_as_lines() {
    for file in ["id\n\n\na\n\nb\n", "id\r\n\r\n\r\na\r\n\r\nb\r\n"] {
        let export = read_export(&CsvLayout::generic("id"), file.as_bytes()).unwrap();

        assert_eq!(lines_and_keys(&export), [(4, "a"), (6, "b")], "{file:?}");
    }
}

#[test]
fn line_numbers_stay_right_past_the_parser_read_ahead() {
    // Far more than the parser's buffer, so line ends are counted ahead of
    // the records asking for them.
    let mut file = String::from("id,note\r\n");
    let mut expected = Vec::new();
    let mut line = 2;
    for i in 0..5_000u64 {
        expected.push((line, format!("ü/{i}")));
        if i % 3 == 0 {
            file.push_str(&format!("ü/{i},\"two\r\nlines, \"\"quoted\"\"\"\r\n"));
            line += 2;
        } else {
            file.push_str(&format!("ü/{i},plain\r\n"));
            line += 1;
        }
        if i % 7 == 0 {
            file.push_str("\r\n");
            line += 1;
        }
    }

    let export = read_export(&CsvLayout::generic("id"), file.as_bytes()).unwrap();

    let got: Vec<(u64, String)> = export
        .rows
        .iter()
        .map(|r| (r.line, r.key.clone()))
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn a_row_whose_key_is_not_utf8_withholds_the_deletes_it_may_be() {
    let previous = Snapshot {
        rows: BTreeMap::from([
            (
                "a/1".to_owned(),
                BTreeMap::from([("id".into(), "a/1".into())]),
            ),
            (
                "a/2".to_owned(),
                BTreeMap::from([("id".into(), "a/2".into())]),
            ),
        ]),
    };
    let file: &[u8] = b"id\na/1\na/\xff\n";

    let export = read_export(&CsvLayout::generic("id"), file).unwrap();
    let result = diff(&previous, &export);

    assert_eq!(export.rejected.len(), 1);
    assert_eq!(export.rejected[0].line, 3);
    assert_eq!(export.rejected[0].key, None);
    assert_eq!(
        export.rejected[0].reason,
        RowError::InvalidUtf8 {
            column: "id".into()
        }
    );
    assert_eq!(result.changes, [], "a/2 may be the unreadable row");
    assert_eq!(result.deletes_withheld, 1);
    assert!(result.next.rows.contains_key("a/2"));
}

#[test]
fn salesforce_is_deleted_that_is_not_a_boolean_is_rejected() {
    let file = "\"ID\",\"ISDELETED\"\n\"003A\",\"yes\"\n\"003B\",\"TRUE\"\n";

    let export = read_export(&CsvLayout::salesforce_contacts(), file.as_bytes()).unwrap();

    assert_eq!(export.rejected.len(), 1);
    assert_eq!(export.rejected[0].line, 2);
    assert_eq!(
        export.rejected[0].reason,
        RowError::InvalidDeletedFlag {
            column: "IsDeleted".into()
        }
    );
    assert_eq!(lines_and_keys(&export), [(3, "003B")]);
    assert!(export.rows[0].deleted);
}
