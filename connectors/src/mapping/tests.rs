use std::collections::BTreeMap;

use mdhub_schema::Model;
use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;

/// The TOML example of the module doc, read from the doc itself so the two
/// cannot drift apart.
fn example() -> String {
    let doc = include_str!("mod.rs");
    let block = doc
        .split("//! ```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("//! ```\n").next())
        .expect("the module doc has a toml example");
    block
        .lines()
        .map(|l| l.strip_prefix("//!").unwrap_or(l).trim_start())
        .collect::<Vec<_>>()
        .join("\n")
}

fn model() -> Model {
    Model::default_customer()
}

fn mapping(text: &str) -> Mapping {
    Mapping::parse(text, "test.toml", &model()).unwrap_or_else(|e| panic!("{e}"))
}

fn problems(text: &str) -> Vec<String> {
    match Mapping::parse(text, "test.toml", &model()) {
        Err(MappingError::Invalid { problems, .. }) => problems,
        other => panic!("expected an invalid mapping, got {other:?}"),
    }
}

fn map(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

#[test]
fn documented_example_reads_a_row() {
    let m = mapping(&example());
    let row = map(&[
        ("org_name", json!("ACME GmbH")),
        ("email_address", json!(" Ann@Example.COM ")),
        ("name", json!("Ann van Berg")),
        ("country_id", json!(276)),
        ("dob", json!("01.03.1980")),
        ("language", Value::Null),
        ("updated_by", json!("someone")),
        ("vat", json!("DE123")),
    ]);
    let got = m.to_canonical(&row).unwrap();
    let want = map(&[
        ("company", json!("ACME GmbH")),
        ("email", json!("ann@example.com")),
        ("given_name", json!("Ann")),
        ("family_name", json!("van Berg")),
        ("country", json!("DE")),
        ("birth_date", json!("1980-03-01")),
        ("lang", json!("en")),
        ("customer_type", json!("company")),
        ("tax_id", json!("DE123")),
    ]);
    assert_eq!(got, want);
}

#[test]
fn writable_and_read_only_fields_follow_the_mapping() {
    let m = mapping(&example());
    let writable: Vec<&str> = m.writable_fields().into_iter().collect();
    assert_eq!(
        writable,
        [
            "birth_date",
            "company",
            "country",
            "email",
            "family_name",
            "given_name",
            "lang"
        ]
    );
    let read_only: Vec<&str> = m.read_only_fields().into_iter().collect();
    assert_eq!(read_only, ["customer_type", "tax_id"]);
    assert!(!m.columns().contains("updated_by"));
}

#[test]
fn writes_only_the_fields_the_update_carries_plus_constants() {
    let m = mapping(&example());
    let row = m
        .to_system(&map(&[
            ("country", json!("BR")),
            ("tax_id", json!("X1")),
            ("customer_type", json!("person")),
        ]))
        .unwrap();
    assert_eq!(
        row,
        map(&[("country_id", json!(76)), ("updated_by", json!("mdhub"))])
    );
    assert_eq!(
        m.to_system(&map(&[("tax_id", json!("X1"))])),
        Ok(Row::new())
    );
}

#[test]
fn split_name_column_needs_both_parts() {
    let m = mapping(&example());
    let errors = m
        .to_system(&map(&[("family_name", json!("Berg"))]))
        .unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].column, "name");
    assert_eq!(errors[0].field, "given_name+family_name");
    assert!(
        errors[0].reason.contains("does not carry given_name"),
        "{}",
        errors[0]
    );
    let row = m
        .to_system(&map(&[
            ("given_name", Value::Null),
            ("family_name", json!("Berg")),
        ]))
        .unwrap();
    assert_eq!(row.get("name"), Some(&json!("Berg")));
}

#[test]
fn join_name_reads_two_columns_and_splits_on_write() {
    let m = mapping(
        r#"
        [[field]]
        canonical = "full_name"
        column = ["first", "last"]
        transform = "join_name"
        "#,
    );
    let got = m
        .to_canonical(&map(&[("first", json!("Ann")), ("last", Value::Null)]))
        .unwrap();
    assert_eq!(got, map(&[("full_name", json!("Ann"))]));
    let row = m
        .to_system(&map(&[("full_name", json!("Ann van Berg"))]))
        .unwrap();
    assert_eq!(
        row,
        map(&[("first", json!("Ann")), ("last", json!("van Berg"))])
    );
    assert_eq!(m.to_canonical(&Row::new()), Ok(BTreeMap::new()));
}

#[test]
fn phone_is_normalized_in_the_region_and_a_bad_one_goes_on_as_sent() {
    let m = mapping(
        r#"
        phone_region = "DE"
        [[field]]
        canonical = "phone"
        column = "tel"
        transform = "phone"
        "#,
    );
    let got = m
        .to_canonical(&map(&[("tel", json!("030 1234567"))]))
        .unwrap();
    assert_eq!(got["phone"], json!("+49301234567"));
    let got = m.to_canonical(&map(&[("tel", json!("call me"))])).unwrap();
    assert_eq!(got["phone"], json!("call me"));
}

#[test]
fn casts_and_lookups_that_fail_name_the_column_not_the_value() {
    let m = mapping(
        r#"
        [[field]]
        canonical = "tax_id"
        column = "vat_no"
        column_type = "number"
        [[field]]
        canonical = "country"
        column = "land"
        transform = { lookup = { 1 = "DE" } }
        [[field]]
        canonical = "city"
        column = "town"
        "#,
    );
    let errors = m
        .to_system(&map(&[
            ("tax_id", json!("Secret Ann")),
            ("country", json!("FR")),
        ]))
        .unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(
        (errors[0].column.as_str(), errors[0].field.as_str()),
        ("vat_no", "tax_id")
    );
    assert_eq!(
        (errors[1].column.as_str(), errors[1].field.as_str()),
        ("land", "country")
    );
    let errors = m
        .to_canonical(&map(&[("land", json!("9")), ("town", json!(12))]))
        .unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:?}");
    for e in &errors {
        let text = e.to_string();
        assert!(
            !text.contains("Secret") && !text.contains('9') && !text.contains("12"),
            "{text}"
        );
    }
    assert!(
        errors[1].reason.contains("set column_type"),
        "{}",
        errors[1]
    );
}

#[test]
fn default_fills_null_and_absent_columns() {
    let m = mapping("[[field]]\ncanonical = \"lang\"\ncolumn = \"l\"\ndefault = \"en\"\n");
    assert_eq!(m.to_canonical(&Row::new()).unwrap()["lang"], json!("en"));
    let got = m.to_canonical(&map(&[("l", Value::Null)])).unwrap();
    assert_eq!(got["lang"], json!("en"));
    let got = m.to_canonical(&map(&[("l", json!("fr"))])).unwrap();
    assert_eq!(got["lang"], json!("fr"));
}

#[test]
fn lowercase_and_bool_casts() {
    let m = mapping(
        r#"
        [[field]]
        canonical = "website"
        column = "url"
        transform = "lowercase"
        [[field]]
        canonical = "customer_type"
        column = "is_company"
        column_type = "bool"
        transform = { lookup = { true = "company", false = "person" } }
        "#,
    );
    let got = m
        .to_canonical(&map(&[
            ("url", json!("Example.COM")),
            ("is_company", json!(true)),
        ]))
        .unwrap();
    assert_eq!(got["website"], json!("example.com"));
    assert_eq!(got["customer_type"], json!("company"));
    let row = m
        .to_system(&map(&[("customer_type", json!("person"))]))
        .unwrap();
    assert_eq!(row["is_company"], json!(false));
}

#[test]
fn many_to_one_lookup_is_refused_unless_read_only() {
    let text = r#"
        [[field]]
        canonical = "country"
        column = "country_id"
        transform = { lookup = { 76 = "BR", 77 = "BR", 233 = "US" } }
        "#;
    assert_eq!(
        problems(text),
        [
            "field[0].transform.lookup: 76 and 77 both map to \"BR\"; a table that is not one-to-one cannot be written back (set read_only = true to only read it)"
        ]
    );
    let m = mapping(&format!("{text}read_only = true\n"));
    assert!(m.writable_fields().is_empty());
    let got = m
        .to_canonical(&map(&[("country_id", json!("77"))]))
        .unwrap();
    assert_eq!(got["country"], json!("BR"));
    assert_eq!(
        m.to_system(&map(&[("country", json!("BR"))])),
        Ok(Row::new())
    );
}

#[test]
fn bad_mapping_reports_every_problem_with_its_path() {
    let text = r#"
        phone_region = "Germany"
        [[field]]
        canonical = "email"
        column = "mail"
        [[field]]
        canonical = "emial"
        column = "mail2"
        [[field]]
        canonical = "email"
        column = "mail3"
        [[field]]
        canonical = "city"
        column = "mail"
        [[field]]
        canonical = ["given_name"]
        column = "name"
        transform = "split_name"
        [[field]]
        canonical = "country"
        column = "cid"
        column_type = "number"
        transform = { lookup = { 1 = "Germany", x = "FR" } }
        [[field]]
        canonical = "phone"
        column = "p"
        transform = "email"
        default = "nobody"
        [[field]]
        constant = 1
        read_only = true
        "#;
    let got = problems(text);
    let want = [
        "phone_region: \"Germany\" is not an ISO 3166-1 alpha-2 code (DE, US, ...)",
        "field[1].canonical: \"emial\" is not a field of customer",
        "field[4].canonical: split_name maps 2 canonical field(s), got 1",
        "field[5].transform.lookup.1: \"Germany\" is not in the canonical form of \"country\" (\"DE\")",
        "field[5].transform.lookup.x: not a value of the column_type",
        "field[6].transform: email does not apply to \"phone\" (type Phone)",
        "field[6].default: not a valid \"phone\": \"nobody\": contains 'n'",
        "field[7].constant: a constant needs exactly one side: a column (written, never read) or a canonical field (read, never written)",
        "field[7].read_only: a constant takes no read_only",
        "field[2].canonical: \"email\" is already mapped by field[0]",
        "field[3].column: \"mail\" is already written by field[0] (set read_only = true on one of them)",
    ];
    assert_eq!(got, want);
    let err = Mapping::parse(text, "crm.toml", &model())
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("mapping crm.toml has 11 problem(s)"),
        "{err}"
    );
}

#[test]
fn unknown_keys_and_transforms_are_refused_by_name() {
    let err = Mapping::parse(
        "[[field]]\ncanonical = \"email\"\ncolumn = \"m\"\ncolour = 1\n",
        "x.toml",
        &model(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("colour"), "{err}");
    let err = Mapping::parse(
        "[[field]]\ncanonical = \"email\"\ncolumn = \"m\"\ntransform = \"upper\"\n",
        "x.toml",
        &model(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("upper") && err.contains("split_name"), "{err}");
}

#[test]
fn a_column_read_twice_is_allowed_when_only_one_entry_writes_it() {
    let m = mapping(
        r#"
        [[field]]
        canonical = "full_name"
        column = "name"
        [[field]]
        canonical = ["given_name", "family_name"]
        column = "name"
        transform = "split_name"
        read_only = true
        "#,
    );
    let got = m
        .to_canonical(&map(&[("name", json!("Ann Berg"))]))
        .unwrap();
    assert_eq!(got["full_name"], json!("Ann Berg"));
    assert_eq!(got["family_name"], json!("Berg"));
}

/// Canonical values in the form the hub holds them, per field of the
/// round-trip mapping; `None` leaves the field out of the update.
fn canonical_update() -> impl Strategy<Value = BTreeMap<String, Value>> {
    let name = ("[A-Z][a-z]{0,8}", "[A-Z][a-z]{0,8}( [a-z]{1,5})?");
    (
        proptest::option::of("[a-z]{1,8}@[a-z]{1,8}\\.(com|de)"),
        proptest::option::of(name),
        proptest::option::of("\\+4930[1-9][0-9]{6}"),
        proptest::option::of(prop_oneof![Just("DE"), Just("US"), Just("BR")]),
        proptest::option::of((1900u32..2020, 1u32..=12, 1u32..=28)),
        proptest::option::of("[1-9][0-9]{0,12}"),
        proptest::option::of(prop_oneof![Just("person"), Just("company")]),
        proptest::option::of("[a-z]{1,10}\\.com"),
        proptest::option::of("[A-Z][a-z]{0,5} [A-Z][a-z]{0,5}"),
    )
        .prop_map(
            |(email, name, phone, country, born, tax, kind, web, company)| {
                let mut m = BTreeMap::new();
                let mut put = |k: &str, v: Option<String>| {
                    if let Some(v) = v {
                        m.insert(k.to_string(), Value::String(v));
                    }
                };
                put("email", email);
                if let Some((g, f)) = name {
                    put("given_name", Some(g));
                    put("family_name", Some(f));
                }
                put("phone", phone);
                put("country", country.map(str::to_string));
                put(
                    "birth_date",
                    born.map(|(y, mo, d)| format!("{y}-{mo:02}-{d:02}")),
                );
                put("tax_id", tax);
                put("customer_type", kind.map(str::to_string));
                put("website", web);
                put("full_name", company);
                m
            },
        )
}

const ROUND_TRIP: &str = r#"
phone_region = "DE"
[[field]]
canonical = "email"
column = "mail"
transform = "email"
[[field]]
canonical = ["given_name", "family_name"]
column = "name"
transform = "split_name"
[[field]]
canonical = "phone"
column = "tel"
transform = "phone"
[[field]]
canonical = "country"
column = "country_id"
column_type = "number"
transform = { lookup = { 76 = "BR", 233 = "US", 276 = "DE" } }
[[field]]
canonical = "birth_date"
column = "dob"
column_type = "date"
[[field]]
canonical = "tax_id"
column = "vat"
column_type = "number"
[[field]]
canonical = "customer_type"
column = "kind"
column_type = "string"
transform = { lookup = { P = "person", C = "company" } }
[[field]]
canonical = "website"
column = "url"
transform = "lowercase"
[[field]]
canonical = "full_name"
column = ["first", "last"]
transform = "join_name"
[[field]]
column = "updated_by"
constant = "mdhub"
"#;

proptest! {
    #[test]
    fn writable_fields_round_trip_through_the_system(update in canonical_update()) {
        let m = mapping(ROUND_TRIP);
        let row = m.to_system(&update).unwrap();
        let back = m.to_canonical(&row).unwrap();
        prop_assert_eq!(&back, &update);
        prop_assert_eq!(row.is_empty(), update.is_empty());
    }
}

#[test]
fn defaults_column_types_and_column_names_are_checked_where_they_apply() {
    let got = problems(
        r#"
        [[field]]
        canonical = ["given_name", "family_name"]
        column = "name"
        transform = "split_name"
        default = "Ann"
        [[field]]
        canonical = "city"
        column = " "
        column_type = "date"
        [[field]]
        canonical = "lang"
        column = "l"
        default = " EN "
        "#,
    );
    assert_eq!(
        got,
        [
            "field[0].default: only an entry with one canonical field and one column takes a default",
            "field[1].column: a column name cannot be empty",
            "field[1].column_type: \"date\" needs a date field and no transform",
            "field[2].default: \" EN \" is not in the canonical form of \"lang\" (\"EN\")",
        ]
    );
}
