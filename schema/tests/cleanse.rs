//! Cleansing as the hub sees it: one event's fields from one source system
//! in, canonical values and quality issues out.

use mdhub_schema::event::Fields;
use mdhub_schema::{cleanse_record, CleanseContext, Model, QualityIssue};
use serde_json::{json, Value};

fn fields(v: Value) -> Fields {
    serde_json::from_value(v).unwrap()
}

#[test]
fn the_same_customer_from_three_systems_cleanses_to_the_same_match_values() {
    // Given one customer as a German CRM, a Chinese ERP and a US web shop
    // export her,
    let model = Model::default_customer();
    let crm = fields(json!({
        "email": "Li.Wei@Example.com ", "phone": "+86 138 0013 8000",
        "country": "China", "postal_code": "100000", "birth_date": "01.03.1980",
    }));
    let erp = fields(json!({
        "email": "ｌｉ．ｗｅｉ＠ｅｘａｍｐｌｅ．ｃｏｍ", "phone": "138-0013-8000",
        "country": "中国", "postal_code": "100000", "birth_date": "1980-03-01",
    }));
    let shop = fields(json!({
        "email": "li.wei@example.com", "phone": "0086 138 0013 8000",
        "country": "PRC", "postal_code": " 100000", "birth_date": "03/01/1980",
    }));

    // when each is cleansed with its own system's default region,
    let de = cleanse_record(
        &model,
        &crm,
        &CleanseContext {
            default_region: Some("DE"),
        },
    );
    let cn = cleanse_record(
        &model,
        &erp,
        &CleanseContext {
            default_region: Some("CN"),
        },
    );
    let us = cleanse_record(
        &model,
        &shop,
        &CleanseContext {
            default_region: Some("US"),
        },
    );

    // then all three carry the same canonical values and no issues.
    let want = json!({
        "email": "li.wei@example.com", "phone": "+8613800138000",
        "country": "CN", "postal_code": "100000", "birth_date": "1980-03-01",
    });
    for r in [de, cn, us] {
        assert_eq!(r.issues, []);
        assert_eq!(Value::Object(r.values.into_iter().collect()), want);
    }
}

#[test]
fn bad_values_are_kept_as_sent_and_flagged_for_a_steward() {
    // Given an export with a bad phone, date, country and e-mail, and a
    // good name,
    let model = Model::default_customer();
    let event = fields(json!({
        "given_name": " Ann ", "phone": "12345", "birth_date": "30.02.1980",
        "country": "Atlantis", "email": "ann at example.com", "postal_code": "null",
    }));

    // when it is cleansed,
    let r = cleanse_record(
        &model,
        &event,
        &CleanseContext {
            default_region: Some("DE"),
        },
    );

    // then the good value is canonical, the bad ones are kept trimmed,
    assert_eq!(r.values["given_name"], "Ann");
    assert_eq!(r.values["phone"], "12345");
    assert_eq!(r.values["birth_date"], "30.02.1980");
    assert_eq!(r.values["country"], "Atlantis");
    // (no valid country, so the postcode is not checked against one)
    assert_eq!(r.values["postal_code"], "NULL");
    // and each bad one has an issue that names the field, value and problem.
    let reasons: Vec<&str> = r.issues.iter().map(|i| i.reason.as_str()).collect();
    assert_eq!(
        reasons,
        [
            "birth_date \"30.02.1980\": day 30 does not exist in 1980-02",
            "country \"Atlantis\": not a known country name or ISO 3166-1 code",
            "email \"ann at example.com\": has no '@'",
            "phone \"12345\": not a valid number for region DE",
        ]
    );
    assert_eq!(
        r.issues[0],
        QualityIssue {
            field: "birth_date".into(),
            value: json!("30.02.1980"),
            reason: reasons[0].into(),
        }
    );
}

#[test]
fn a_cleared_value_is_never_an_issue() {
    let model = Model::default_customer();
    let event = fields(json!({"phone": null, "country": null, "postal_code": null}));
    let r = cleanse_record(&model, &event, &CleanseContext::default());
    assert_eq!(r.issues, []);
    assert!(r.values.values().all(Value::is_null));
}

#[test]
fn issues_round_trip_through_json() {
    let issue = QualityIssue {
        field: "phone".into(),
        value: json!("12345"),
        reason: "phone \"12345\": not a valid number for region DE".into(),
    };
    let text = serde_json::to_string(&issue).unwrap();
    assert_eq!(serde_json::from_str::<QualityIssue>(&text).unwrap(), issue);
}
