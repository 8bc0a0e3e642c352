//! The OpenAPI description is the API's contract: `docs/openapi.json` must
//! be what the code generates, and every route the router answers must be
//! in it, with the role it enforces.
//!
//! Axum cannot list a router's routes, so the guarantee is built in and
//! checked from both sides: the router is made only from the registration
//! list that also makes the description (`hub/src/api/mod.rs`), these
//! tests call every documented operation through the router, and a scan of
//! the hub's sources refuses any axum call that would add a route outside
//! that list.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use mdhub_hub::api::{openapi_json, router, ActionSink, ApiState};
use mdhub_hub::config::{token_hash, HubConfig, Role, TokenConfig};
use mdhub_hub::hub::Hub;
use mdhub_schema::Limits;
use serde_json::Value;
use tower::ServiceExt;

const REGENERATE: &str = "cargo run -p mdhub-hub --bin mdhub -- openapi > docs/openapi.json";

/// Methods a route could have besides the documented ones.
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "DELETE", "PATCH"];

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn spec() -> Value {
    serde_json::from_str(openapi_json()).expect("the description is JSON")
}

/// One documented operation.
struct Documented {
    method: String,
    path: String,
    /// The role of its security requirement; `None`: public.
    role: Option<Role>,
}

fn documented() -> Vec<Documented> {
    let spec = spec();
    let mut out = Vec::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().unwrap() {
            if !METHODS.contains(&method.to_uppercase().as_str()) {
                continue;
            }
            let role = op.get("security").map(|reqs| {
                let scopes = &reqs[0]["bearer"];
                assert_eq!(
                    scopes.as_array().map(Vec::len),
                    Some(1),
                    "{method} {path}: one role"
                );
                serde_json::from_value::<Role>(scopes[0].clone())
                    .unwrap_or_else(|e| panic!("{method} {path}: role {}: {e}", scopes[0]))
            });
            out.push(Documented {
                method: method.to_uppercase(),
                path: path.clone(),
                role,
            });
        }
    }
    assert!(!out.is_empty(), "the description lists no operation");
    out
}

/// A concrete URI of a path template: a UUID for ids, a word otherwise.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|seg| match seg.strip_prefix('{') {
            Some(name) if name.ends_with("_id}") && name != "record_id}" => {
                "0192f3a4-5b6c-7d7e-8f90-a1b2c3d4e5f6".to_string()
            }
            Some(_) => "x".to_string(),
            None => seg.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

const ROLES: [(Role, &str); 4] = [
    (Role::Reader, "reader-secret"),
    (Role::Steward, "steward-secret"),
    (Role::Auditor, "auditor-secret"),
    (Role::Admin, "admin-secret"),
];

fn app() -> (tempfile::TempDir, Router) {
    let dir = tempfile::tempdir().unwrap();
    let config = HubConfig::parse("[system.crm]\n", "test").unwrap();
    let models = config.load_models("test").unwrap();
    let rules = Arc::new(config.rules(models));
    let (hub, _) = Hub::open(dir.path(), rules, Limits::default()).unwrap();
    let tokens = ROLES
        .iter()
        .map(|(role, secret)| TokenConfig {
            name: format!("{role:?}"),
            role: *role,
            sha256: token_hash(secret),
        })
        .collect();
    let app = router(ApiState {
        hub: Arc::new(RwLock::new(hub)),
        tokens: Arc::new(tokens),
        metrics: None,
        actions: ActionSink::Direct,
        audit: None,
    });
    (dir, app)
}

async fn call(app: &Router, method: &str, uri: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[test]
fn docs_openapi_json_is_what_the_code_generates() {
    let path = repo_root().join("docs/openapi.json");
    let published = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "reading {}: {e}; generate it with `{REGENERATE}`",
            path.display()
        )
    });
    let generated = openapi_json();
    if published != generated {
        let first = published
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(published.lines().count().min(generated.lines().count()));
        panic!(
            "docs/openapi.json is stale (first difference at line {}: {:?} in the file, {:?} from the code); \
             regenerate it with `{REGENERATE}` and review the diff",
            first + 1,
            published.lines().nth(first).unwrap_or("<end>"),
            generated.lines().nth(first).unwrap_or("<end>"),
        );
    }
}

#[tokio::test]
async fn the_description_is_served_without_a_token() {
    let (_dir, app) = app();
    let resp = app
        .clone()
        .oneshot(
            Request::get("/v1/openapi.json")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, openapi_json().as_bytes());
    assert!(spec()["openapi"].as_str().unwrap().starts_with("3."));
}

/// Each documented operation reaches a route of the router (not the 404
/// fallback, not 405), behind the role the description names.
#[tokio::test]
async fn every_documented_operation_is_routed_behind_its_documented_role() {
    let (_dir, app) = app();
    for op in documented() {
        let uri = concrete(&op.path);
        let what = format!("{} {} ({uri})", op.method, op.path);
        let (status, body) = call(&app, &op.method, &uri, None).await;
        match op.role {
            // The fallbacks need no token: a 401 proves a gated route matched.
            Some(_) => assert_eq!(
                (status, body["error"]["code"].as_str()),
                (StatusCode::UNAUTHORIZED, Some("unauthenticated")),
                "{what}: documented as gated"
            ),
            None => assert_eq!(status, StatusCode::OK, "{what}: documented as public"),
        }
        let Some(needs) = op.role else { continue };
        for (role, secret) in ROLES {
            let (status, body) = call(&app, &op.method, &uri, Some(secret)).await;
            if role.allows(needs) {
                assert!(
                    ![
                        StatusCode::UNAUTHORIZED,
                        StatusCode::FORBIDDEN,
                        StatusCode::METHOD_NOT_ALLOWED
                    ]
                    .contains(&status),
                    "{what} with a {role:?} token: {status} {body}"
                );
            } else {
                assert_eq!(
                    (status, body["error"]["code"].as_str()),
                    (StatusCode::FORBIDDEN, Some("forbidden")),
                    "{what} with a {role:?} token: documented as needing {needs:?}"
                );
            }
        }
    }
}

/// A method the description does not list on one of its paths is a 405:
/// the router answers nothing undocumented there.
#[tokio::test]
async fn no_undocumented_method_answers_on_a_documented_path() {
    let (_dir, app) = app();
    let ops = documented();
    let paths: BTreeSet<&str> = ops.iter().map(|o| o.path.as_str()).collect();
    for path in paths {
        let uri = concrete(path);
        for method in METHODS {
            if ops.iter().any(|o| o.path == path && o.method == method) {
                continue;
            }
            let (status, body) = call(&app, method, &uri, Some("admin-secret")).await;
            assert_eq!(
                (status, body["error"]["code"].as_str()),
                (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed")),
                "{method} {path} is answered but not in the description"
            );
        }
    }
}

/// Calls that add a route to an axum router (or utoipa-axum's) without its
/// OpenAPI operation. Whitespace is removed before matching.
const BYPASSES: [&str; 7] = [
    ".route(",
    ".route_service(",
    ".nest(",
    ".nest_service(",
    ".fallback_service(",
    "OpenApiRouter::from(",
    "Router::from(",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Routes can only come in through `routes!(handler)` in the registration
/// list; anything else would be answered by the router and missing from
/// the description.
#[test]
fn no_route_is_added_outside_the_documented_registration() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.iter().any(|f| f.ends_with("api/mod.rs")));
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            let squeezed: String = code.chars().filter(|c| !c.is_whitespace()).collect();
            for bypass in BYPASSES {
                if squeezed.contains(bypass) {
                    found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "routes added outside the documented registration (use `.routes(routes!(handler))` with a \
         `#[utoipa::path]` on the handler, in `registered` in hub/src/api/mod.rs):\n{}",
        found.join("\n")
    );
}

/// The route table of the module doc of hub/src/api/mod.rs names the
/// documented operations, no more, no fewer.
#[test]
fn the_module_doc_route_table_lists_the_documented_operations() {
    let text =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/api/mod.rs"))
            .unwrap();
    let in_doc: BTreeSet<(String, String)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("//! | `"))
        .filter_map(|l| l.split('`').next())
        .filter_map(|route| {
            let (method, path) = route.split_once(' ')?;
            let path = path.split('[').next()?.split('?').next()?;
            Some((method.to_string(), path.to_string()))
        })
        .collect();
    let in_spec: BTreeSet<(String, String)> = documented()
        .into_iter()
        .map(|o| (o.method, o.path))
        .collect();
    assert_eq!(in_doc, in_spec, "the route table of hub/src/api/mod.rs");
}

fn refs(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                out.insert(r.clone());
            }
            map.values().for_each(|v| refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

/// Every schema the description refers to is in it: a client generator
/// would fail on a dangling `$ref`.
#[test]
fn every_schema_reference_resolves() {
    let spec = spec();
    let mut found = BTreeSet::new();
    refs(&spec, &mut found);
    assert!(found.contains("#/components/schemas/ErrorBody"));
    for r in found {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected reference {r}"));
        assert!(
            spec["components"]["schemas"].get(name).is_some(),
            "{r} is not in components.schemas"
        );
    }
}
