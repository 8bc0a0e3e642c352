//! The HTTP API over a real hub in a temp dir, without a socket
//! (`Router::oneshot`).

use std::sync::{Arc, RwLock};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use mdhub_hub::api::{router, ApiState};
use mdhub_hub::config::{token_hash, HubConfig, Role, TokenConfig};
use mdhub_hub::golden::SourceKey;
use mdhub_hub::hub::{Hub, Inbound, SharedHub};
use mdhub_schema::Limits;
use serde_json::{json, Value};
use tower::ServiceExt;
use uuid::Uuid;

const READER: &str = "reader-token";
const AUDITOR: &str = "auditor-token";
const ADMIN: &str = "admin-token";
const STEWARD: &str = "steward-token";

/// Links at 0.99: Anne (another street) is a review task there, not a link.
const CONFIG: &str = r#"
[system.crm]
[system.erp]
[survivorship]
source_priority = ["crm", "erp"]
[match]
link_probability = 0.99
"#;

struct Fixture {
    _dir: tempfile::TempDir,
    hub: SharedHub,
    app: Router,
    /// Golden id of Ann, who has a phone conflict.
    ann: Uuid,
}

fn event(system: &str, record_id: &str, fields: Value, observed_at: &str) -> Inbound {
    let payload = json!({
        "schema_version": 1,
        "event_id": Uuid::now_v7(),
        "system": system,
        "entity": "customer",
        "record_id": record_id,
        "op": "upsert",
        "fields": fields,
        "observed_at": observed_at,
    });
    Inbound::new(
        format!("mdhub.in.{system}.customer"),
        serde_json::to_vec(&payload).unwrap(),
    )
}

/// Given: Ann in crm and erp (same email), each changing her phone without
/// having seen the other's change; Bob in crm only.
fn fixture(with_metrics: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let config = HubConfig::parse(CONFIG, "test").unwrap();
    let models = config.load_models("test").unwrap();
    let rules = Arc::new(config.rules(models));
    let (mut hub, _) = Hub::open(dir.path(), rules, Limits::default()).unwrap();
    let outcome = hub
        .ingest(&[
            event(
                "crm",
                "c-1",
                json!({"email": "ann@example.com", "phone": "+49 30 1111111", "given_name": "Ann"}),
                "2026-01-01T10:00:00Z",
            ),
            event(
                "erp",
                "E/77",
                json!({"email": "ANN@example.com", "phone": "+49 30 2222222"}),
                "2026-01-01T10:05:00Z",
            ),
            event(
                "crm",
                "c-2",
                json!({"email": "bob@example.com"}),
                "2026-01-01T11:00:00Z",
            ),
        ])
        .unwrap();
    assert!(outcome.rejected.is_empty(), "{:?}", outcome.rejected);
    assert_eq!(outcome.appended, 3);
    let ann = hub
        .state()
        .golden_of(&SourceKey {
            system: "crm".into(),
            record_id: "c-1".into(),
        })
        .unwrap()
        .unwrap();

    let token = |name: &str, role, secret: &str| TokenConfig {
        name: name.into(),
        role,
        sha256: token_hash(secret),
    };
    let hub: SharedHub = Arc::new(RwLock::new(hub));
    let metrics = with_metrics.then(|| {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .build_recorder()
            .handle()
    });
    let app = router(ApiState {
        actions: mdhub_hub::api::ActionSink::Direct,
        hub: hub.clone(),
        tokens: Arc::new(vec![
            token("ops", Role::Reader, READER),
            token("audit", Role::Auditor, AUDITOR),
            token("root", Role::Admin, ADMIN),
            token("dana", Role::Steward, STEWARD),
        ]),
        metrics,
        audit: None,
    });
    Fixture {
        _dir: dir,
        hub,
        app,
        ann,
    }
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// Asserts an error reply with this status and code.
    fn assert_error(&self, status: StatusCode, code: &str) -> Value {
        assert_eq!(
            self.status,
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(
            self.headers[header::CONTENT_TYPE],
            "application/json",
            "errors are JSON"
        );
        let body = self.json();
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{body}"
        );
        body
    }
}

async fn call(app: &Router, method: &str, uri: &str, token: Option<&str>) -> Reply {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let response = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

/// A request with a JSON body.
async fn send(app: &Router, method: &str, uri: &str, token: &str, body: Value) -> Reply {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap();
    let response = app.clone().oneshot(req).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

async fn get(app: &Router, uri: &str, token: Option<&str>) -> Reply {
    call(app, "GET", uri, token).await
}

#[tokio::test]
async fn healthz_needs_no_token() {
    let f = fixture(false);
    let r = get(&f.app, "/healthz", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json(),
        json!({"status": "ok", "log_seq": 3, "published_seq": 0, "checkpoint_seq": 0,
               "started_from_seq": 0, "golden_records": 2,
               "match": {"records_held": 3, "reresolution_pending": 0, "merges_prevented": 0}})
    );
}

#[tokio::test]
async fn missing_or_unknown_token_is_401_with_challenge() {
    let f = fixture(false);
    let uri = format!("/v1/customers/{}", f.ann);
    for token in [None, Some("wrong-token")] {
        let r = get(&f.app, &uri, token).await;
        r.assert_error(StatusCode::UNAUTHORIZED, "unauthenticated");
        assert_eq!(r.headers[header::WWW_AUTHENTICATE], "Bearer");
    }
    // A non-bearer scheme with a valid secret is not accepted either.
    let req = Request::builder()
        .uri(&uri)
        .header(header::AUTHORIZATION, format!("Basic {READER}"))
        .body(Body::empty())
        .unwrap();
    let resp = f.app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // Authentication comes before input checks: no 400 for a bad id.
    get(&f.app, "/v1/customers/not-a-uuid", None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthenticated");
}

#[tokio::test]
async fn state_hash_needs_the_auditor_role() {
    let f = fixture(false);
    let r = get(&f.app, "/v1/state-hash", Some(READER)).await;
    let body = r.assert_error(StatusCode::FORBIDDEN, "forbidden");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("auditor"),
        "{body}"
    );

    let expected = f.hub.read().unwrap().state().state_hash().unwrap();
    for token in [AUDITOR, ADMIN] {
        let r = get(&f.app, "/v1/state-hash", Some(token)).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.json(), json!({"state_hash": expected, "log_seq": 3}));
    }
}

#[tokio::test]
async fn golden_record_shows_values_links_and_the_conflict() {
    let f = fixture(false);
    let r = get(&f.app, &format!("/v1/customers/{}", f.ann), Some(READER)).await;
    assert_eq!(r.status, StatusCode::OK);
    let body = r.json();
    assert_eq!(body["golden_id"], f.ann.to_string());
    assert_eq!(body["entity"], "customer");
    assert_eq!(body["retired"], false);
    assert!(
        body["version"].as_array().is_some_and(|v| !v.is_empty()),
        "{body}"
    );
    assert_eq!(body["values"]["email"], "ann@example.com");
    assert_eq!(body["values"]["given_name"], "Ann");
    assert_eq!(body["values"]["phone"], "+49302222222", "most recent wins");
    assert_eq!(
        body["links"],
        json!([
            {"system": "crm", "record_id": "c-1"},
            {"system": "erp", "record_id": "E/77"},
        ])
    );
    let phone = body["conflicts"]["phone"]
        .as_array()
        .expect("phone is in conflict");
    assert_eq!(phone.len(), 2, "{body}");
    assert_eq!(phone[0]["system"], "crm");
    assert_eq!(phone[0]["value"], "+49301111111");
    assert_eq!(phone[0]["observed_at"], "2026-01-01T10:00:00Z");
    assert!(phone[0]["event_id"]
        .as_str()
        .unwrap()
        .parse::<Uuid>()
        .is_ok());
    assert_eq!(phone[1]["system"], "erp");
    assert_eq!(phone[1]["value"], "+49302222222");
    assert_eq!(phone[1]["observed_at"], "2026-01-01T10:05:00Z");
    assert!(
        body["conflicts"].get("given_name").is_none(),
        "one candidate is no conflict"
    );
    assert!(
        body.get("candidates").is_none(),
        "candidates only on request"
    );

    let r = get(
        &f.app,
        &format!("/v1/customers/{}?candidates=true", f.ann),
        Some(READER),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let body = r.json();
    assert_eq!(body["candidates"]["given_name"][0]["system"], "crm");
    assert_eq!(body["candidates"]["phone"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn unknown_golden_id_is_404_and_a_bad_one_400() {
    let f = fixture(false);
    let r = get(
        &f.app,
        &format!("/v1/customers/{}", Uuid::now_v7()),
        Some(READER),
    )
    .await;
    r.assert_error(StatusCode::NOT_FOUND, "not_found");

    let r = get(&f.app, "/v1/customers/not-a-uuid", Some(READER)).await;
    let body = r.assert_error(StatusCode::BAD_REQUEST, "bad_request");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not a UUID"),
        "{body}"
    );

    let r = get(
        &f.app,
        &format!("/v1/customers/{}?bogus=1", f.ann),
        Some(READER),
    )
    .await;
    r.assert_error(StatusCode::BAD_REQUEST, "bad_request");
}

#[tokio::test]
async fn find_by_field_normalizes_the_query() {
    let f = fixture(false);
    let r = get(
        &f.app,
        "/v1/customers?field=email&value=%20Ann@EXAMPLE.com",
        Some(READER),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let body = r.json();
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{body}");
    assert_eq!(results[0]["golden_id"], f.ann.to_string());
    assert_eq!(results[0]["values"]["phone"], "+49302222222");

    let r = get(
        &f.app,
        "/v1/customers?field=phone&value=%2B49%2030%201111111",
        Some(READER),
    )
    .await;
    assert_eq!(
        r.json(),
        json!({"results": []}),
        "a losing candidate is not the golden value"
    );

    let r = get(
        &f.app,
        "/v1/customers?field=email&value=nobody@example.com&limit=1000",
        Some(READER),
    )
    .await;
    assert_eq!(r.json(), json!({"results": []}));
}

#[tokio::test]
async fn find_by_field_rejects_bad_input() {
    let f = fixture(false);
    for uri in [
        "/v1/customers?field=shoe_size&value=42",
        "/v1/customers?field=email&value=not-an-email",
        "/v1/customers?field=email",
        "/v1/customers?value=ann@example.com",
        "/v1/customers?field=email&value=ann@example.com&limit=0",
        "/v1/customers?field=email&value=ann@example.com&limit=1001",
        "/v1/customers?field=email&value=ann@example.com&limit=ten",
    ] {
        get(&f.app, uri, Some(READER))
            .await
            .assert_error(StatusCode::BAD_REQUEST, "bad_request");
    }
}

#[tokio::test]
async fn source_lookup() {
    let f = fixture(false);
    let r = get(&f.app, "/v1/sources/erp/E%2F77", Some(READER)).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(
        r.json(),
        json!({"system": "erp", "record_id": "E/77", "golden_id": f.ann.to_string()})
    );
    get(&f.app, "/v1/sources/erp/nope", Some(READER))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let f = fixture(false);
    get(&f.app, "/v2/nothing", Some(READER))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    let r = call(&f.app, "DELETE", "/healthz", None).await;
    r.assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    assert_eq!(r.headers[header::ALLOW], "GET,HEAD");
}

#[tokio::test]
async fn metrics_text_or_503_without_a_recorder() {
    let f = fixture(false);
    get(&f.app, "/metrics", None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthenticated");
    get(&f.app, "/metrics", Some(READER))
        .await
        .assert_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");

    let f = fixture(true);
    let r = get(&f.app, "/metrics", Some(READER)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
}

#[tokio::test]
async fn a_poisoned_lock_is_503() {
    let f = fixture(false);
    let hub = f.hub.clone();
    let _ = std::thread::spawn(move || {
        let _guard = hub.write().unwrap();
        panic!("a writer fails while holding the lock");
    })
    .join();
    assert!(f.hub.is_poisoned());
    get(&f.app, "/healthz", None)
        .await
        .assert_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    get(&f.app, &format!("/v1/customers/{}", f.ann), Some(READER))
        .await
        .assert_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
}

#[tokio::test]
async fn steward_actions_need_the_steward_role() {
    let f = fixture(false);
    let body = json!({"golden_ids": [f.ann, f.ann], "reason": "same person"});
    send(&f.app, "POST", "/v1/customers/merge", READER, body.clone())
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    get(&f.app, "/v1/reviews", Some(AUDITOR))
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    let r = get(&f.app, "/v1/reviews", Some(STEWARD)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), json!({"tasks": []}));
}

#[tokio::test]
async fn a_merge_through_the_api_retires_one_id_that_then_points_to_its_survivor() {
    let f = fixture(false);
    let bob = f
        .hub
        .read()
        .unwrap()
        .state()
        .golden_of(&SourceKey {
            system: "crm".into(),
            record_id: "c-2".into(),
        })
        .unwrap()
        .unwrap();
    let r = send(
        &f.app,
        "POST",
        "/v1/customers/merge",
        STEWARD,
        json!({"golden_ids": [bob.to_string(), f.ann.to_string()], "reason": "Bob is Ann's second account"}),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.json()["applied"], true);
    let old = get(&f.app, &format!("/v1/customers/{bob}"), Some(READER))
        .await
        .json();
    assert_eq!(old["retired"], true);
    assert_eq!(old["merged_into"], f.ann.to_string());
    let survivor = get(&f.app, &format!("/v1/customers/{}", f.ann), Some(READER))
        .await
        .json();
    assert_eq!(survivor["links"].as_array().unwrap().len(), 3);
    // Merging them again is refused with the reason.
    send(
        &f.app,
        "POST",
        "/v1/customers/merge",
        STEWARD,
        json!({"golden_ids": [bob.to_string(), f.ann.to_string()], "reason": "again"}),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "bad_request");
}

#[tokio::test]
async fn an_override_through_the_api_shows_on_the_record() {
    let f = fixture(false);
    let uri = format!("/v1/customers/{}/overrides/given_name", f.ann);
    let r = send(
        &f.app,
        "PUT",
        &uri,
        STEWARD,
        json!({"value": "Anne", "reason": "spelling confirmed"}),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let rec = get(&f.app, &format!("/v1/customers/{}", f.ann), Some(READER))
        .await
        .json();
    assert_eq!(rec["values"]["given_name"], "Anne");
    assert_eq!(rec["overrides"]["given_name"], "Anne");
}

#[tokio::test]
async fn bad_steward_requests_are_named() {
    let f = fixture(false);
    let uri = format!("/v1/customers/{}/overrides/shoe_size", f.ann);
    let body = send(
        &f.app,
        "PUT",
        &uri,
        STEWARD,
        json!({"value": "44", "reason": "x"}),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "bad_request");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("shoe_size"),
        "{body}"
    );
    let uri = format!("/v1/customers/{}/overrides/email", f.ann);
    let body = send(
        &f.app,
        "PUT",
        &uri,
        STEWARD,
        json!({"value": "not-an-email", "reason": "x"}),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "bad_request");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("email"),
        "{body}"
    );
    send(
        &f.app,
        "PUT",
        &format!("/v1/customers/{}/overrides/city", f.ann),
        STEWARD,
        json!({"value": "Berlin", "reason": " "}),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "bad_request");
    send(
        &f.app,
        "POST",
        &format!("/v1/reviews/{}/decision", Uuid::nil()),
        STEWARD,
        json!({"same": true, "reason": "x"}),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "not_found");
    send(
        &f.app,
        "POST",
        "/v1/sources/crm/c-2/split",
        STEWARD,
        json!({"reason": "x"}),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "bad_request");
    send(
        &f.app,
        "POST",
        "/v1/sources/crm/nope/split",
        STEWARD,
        json!({"reason": "x"}),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "not_found");
}

/// Given the fixture, Anna in crm and a doubtful Anne in erp: an open
/// review task between them. Returns its id.
async fn open_review_task(f: &Fixture) -> Uuid {
    let outcome = f
        .hub
        .write()
        .unwrap()
        .ingest(&[
            event(
                "crm",
                "c-3",
                json!({"customer_type": "person", "given_name": "Anna", "family_name": "Schmidt",
                       "birth_date": "1985-03-01", "street": "Hauptstraße 5", "postal_code": "10115",
                       "city": "Berlin"}),
                "2026-01-02T10:00:00Z",
            ),
            event(
                "erp",
                "e-3",
                json!({"customer_type": "person", "given_name": "Anne", "family_name": "Schmidt",
                       "postal_code": "10115", "city": "Berlin", "street": "Torstraße 90"}),
                "2026-01-02T10:05:00Z",
            ),
        ])
        .unwrap();
    assert!(outcome.rejected.is_empty(), "{:?}", outcome.rejected);
    let r = get(&f.app, "/v1/reviews", Some(STEWARD)).await;
    let tasks = r.json()["tasks"].as_array().unwrap().clone();
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(tasks[0]["status"], "open");
    tasks[0]["task_id"].as_str().unwrap().parse().unwrap()
}

fn golden_of(f: &Fixture, system: &str, record_id: &str) -> Uuid {
    f.hub
        .read()
        .unwrap()
        .state()
        .golden_of(&SourceKey {
            system: system.into(),
            record_id: record_id.into(),
        })
        .unwrap()
        .unwrap()
}

/// Each steward action route, with a body that the hub accepts given
/// `open_review_task`, and `reason` as its reason.
async fn every_action(f: &Fixture, task: Uuid, reason: &str) -> Vec<(String, Reply)> {
    let bob = golden_of(f, "crm", "c-2");
    let mut replies = Vec::new();
    for (method, uri, body) in [
        (
            "POST",
            format!("/v1/reviews/{task}/decision"),
            json!({"same": false, "reason": reason}),
        ),
        (
            "POST",
            "/v1/customers/merge".to_string(),
            json!({"golden_ids": [bob, f.ann], "reason": reason}),
        ),
        (
            "POST",
            "/v1/sources/erp/E%2F77/split".to_string(),
            json!({"reason": reason}),
        ),
        (
            "PUT",
            format!("/v1/customers/{}/overrides/given_name", f.ann),
            json!({"value": "Anne", "reason": reason}),
        ),
    ] {
        let r = send(&f.app, method, &uri, STEWARD, body).await;
        replies.push((format!("{method} {uri}"), r));
    }
    replies
}

#[tokio::test]
async fn healthz_of_a_degraded_hub_says_so_with_the_entry_and_the_error_and_still_200() {
    let f = fixture(false);
    f.hub
        .write()
        .unwrap()
        .mark_degraded(2, "deriving entry 2: golden record missing".into());
    let r = get(&f.app, "/healthz", None).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "a liveness probe must not restart it"
    );
    assert_eq!(
        r.json(),
        json!({"status": "degraded", "degraded_seq": 2, "error": "deriving entry 2: golden record missing",
               "log_seq": 3, "published_seq": 0, "checkpoint_seq": 0, "started_from_seq": 0,
               "golden_records": 2,
               "match": {"records_held": 3, "reresolution_pending": 0, "merges_prevented": 0}})
    );
}

#[tokio::test]
async fn steward_actions_of_a_degraded_hub_are_503_degraded_and_submit_nothing() {
    let f = fixture(false);
    let task = open_review_task(&f).await;
    let seq_before = f.hub.read().unwrap().log().last_seq();
    f.hub
        .write()
        .unwrap()
        .mark_degraded(seq_before, "a bug".into());
    for (what, r) in every_action(&f, task, "the same person").await {
        let body = r.assert_error(StatusCode::SERVICE_UNAVAILABLE, "degraded");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("log entry {seq_before}")),
            "{what}: {message}"
        );
    }
    assert_eq!(
        f.hub.read().unwrap().log().last_seq(),
        seq_before,
        "nothing was submitted"
    );
    // Still refused without a valid token: authentication comes first.
    send(
        &f.app,
        "POST",
        "/v1/customers/merge",
        "wrong-token",
        json!({"golden_ids": [f.ann, f.ann], "reason": "x"}),
    )
    .await
    .assert_error(StatusCode::UNAUTHORIZED, "unauthenticated");
}

#[tokio::test]
async fn reads_of_a_degraded_hub_still_answer() {
    let f = fixture(false);
    f.hub.write().unwrap().mark_degraded(3, "a bug".into());
    let r = get(&f.app, &format!("/v1/customers/{}", f.ann), Some(READER)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["golden_id"], f.ann.to_string());
    let r = get(&f.app, "/v1/reviews", Some(STEWARD)).await;
    assert_eq!(r.status, StatusCode::OK, "listing reviews is a read");
}

/// 2,001 bytes in 1,001 characters: over the limit only when counted in
/// bytes, as the hub's parser counts.
fn reason_of_2001_bytes() -> String {
    let reason = "é".repeat(1000) + "x";
    assert_eq!((reason.len(), reason.chars().count()), (2001, 1001));
    reason
}

#[tokio::test]
async fn a_reason_over_2000_bytes_is_400_on_every_steward_route() {
    assert_eq!(mdhub_hub::steward::MAX_REASON, 2000);
    let f = fixture(false);
    let task = open_review_task(&f).await;
    let seq_before = f.hub.read().unwrap().log().last_seq();
    for (what, r) in every_action(&f, task, &reason_of_2001_bytes()).await {
        let body = r.assert_error(StatusCode::BAD_REQUEST, "bad_request");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("2001 bytes") && message.contains("limit is 2000 bytes"),
            "{what}: {message}"
        );
    }
    assert_eq!(f.hub.read().unwrap().log().last_seq(), seq_before);
}

#[tokio::test]
async fn a_reason_of_exactly_2000_bytes_is_applied_on_every_steward_route() {
    let f = fixture(false);
    let task = open_review_task(&f).await;
    // 2,000 bytes in 1,000 characters.
    let reason = "é".repeat(1000);
    assert_eq!(reason.len(), 2000);
    for (what, r) in every_action(&f, task, &reason).await {
        assert_eq!(
            r.status,
            StatusCode::OK,
            "{what}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(
            r.json()["applied"],
            true,
            "{what}: the hub's parser took it"
        );
    }
}

#[tokio::test]
async fn an_empty_reason_is_400_on_every_steward_route() {
    let f = fixture(false);
    let task = open_review_task(&f).await;
    for (what, r) in every_action(&f, task, "").await {
        let body = r.assert_error(StatusCode::BAD_REQUEST, "bad_request");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("reason"),
            "{what}: {body}"
        );
    }
}

#[tokio::test]
async fn history_needs_the_auditor_role_and_pages() {
    let f = fixture(false);
    let uri = format!("/v1/customers/{}/history", f.ann);
    let r = get(&f.app, &uri, Some(READER)).await;
    r.assert_error(StatusCode::FORBIDDEN, "forbidden");
    let r = get(&f.app, &uri, Some(AUDITOR)).await;
    assert_eq!(r.status, StatusCode::OK);
    let body = r.json();
    let seqs: Vec<u64> = body["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["log_seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![1, 2], "Ann's two events; Bob's is not hers");
    assert_eq!(body["steps"][1]["system"], "erp");
    assert_eq!(body["steps"][1]["record_id"], "E/77");
    assert_eq!(
        body["steps"][1]["changes"]["phone"],
        json!({"before": "+49301111111", "after": "+49302222222"})
    );
    assert!(body.get("next_after_seq").is_none(), "{body}");

    let r = get(&f.app, &format!("{uri}?limit=1"), Some(AUDITOR)).await;
    assert_eq!(r.json()["next_after_seq"], 1);
    let r = get(&f.app, &format!("{uri}?limit=1&after_seq=1"), Some(AUDITOR)).await;
    assert_eq!(r.json()["steps"][0]["log_seq"], 2);

    get(&f.app, &format!("{uri}?limit=0"), Some(AUDITOR))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_request");
    get(&f.app, &format!("{uri}?after=1"), Some(AUDITOR))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_request");
    get(
        &f.app,
        &format!("/v1/customers/{}/history", Uuid::nil()),
        Some(AUDITOR),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "not_found");
    get(&f.app, "/v1/customers/not-a-uuid/history", Some(AUDITOR))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_request");
}

#[tokio::test]
async fn a_record_as_of_an_earlier_entry_with_provenance() {
    let f = fixture(false);
    let uri = format!("/v1/customers/{}", f.ann);
    let r = get(&f.app, &format!("{uri}?as_of=1"), Some(READER)).await;
    assert_eq!(r.status, StatusCode::OK);
    let body = r.json();
    assert_eq!(body["as_of"], 1);
    assert_eq!(
        body["values"]["phone"], "+49301111111",
        "before erp's event"
    );
    assert_eq!(
        body["links"],
        json!([{"system": "crm", "record_id": "c-1"}])
    );
    assert_eq!(body["conflicts"], json!({}));
    assert_eq!(
        body["provenance"]["phone"],
        json!({"log_seq": 1, "system": "crm", "record_id": "c-1", "rule": "most_recent"})
    );
    assert!(body.get("version").is_none(), "{body}");

    let body = get(&f.app, &format!("{uri}?as_of=3"), Some(READER))
        .await
        .json();
    assert_eq!(body["values"]["phone"], "+49302222222");
    assert_eq!(body["provenance"]["phone"]["record_id"], "E/77");
    assert_eq!(body["provenance"]["given_name"]["log_seq"], 1);
    assert_eq!(
        body["conflicts"]["phone"].as_array().map(Vec::len),
        Some(2),
        "{body}"
    );
    // The same as the record now, but for what history does not keep.
    let now = get(&f.app, &uri, Some(READER)).await.json();
    for key in ["values", "links", "conflicts", "retired"] {
        assert_eq!(body[key], now[key], "{key}");
    }

    get(&f.app, &format!("{uri}?as_of=0"), Some(READER))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    get(&f.app, &format!("{uri}?as_of=yesterday"), Some(READER))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_request");
}
