//! Bearer-token authentication and role checks.
//!
//! The configuration holds only the hex SHA-256 of each token. A request's
//! token is hashed and compared with every configured hash in constant time
//! (no early exit, whichever token matches). Tokens are never logged; the
//! token's configured `name` is.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::Response;

use super::error::ApiError;
use crate::config::{token_hash, Role, TokenConfig};

/// Who made a request, put in the request's extensions once authenticated.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's configured name.
    pub name: String,
    pub role: Role,
}

/// What a group of routes requires: the state of the `require` middleware.
#[derive(Clone)]
pub struct Gate {
    pub tokens: Arc<Vec<TokenConfig>>,
    pub needs: Role,
}

/// Middleware: 401 without a known token, 403 if its role does not allow
/// `gate.needs`; else runs the handler with a `Caller` in the extensions.
pub async fn require(
    State(gate): State<Gate>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let caller = authenticate(&gate.tokens, req.headers())?;
    if !caller.role.allows(gate.needs) {
        tracing::info!(caller = %caller.name, role = ?caller.role, needs = ?gate.needs, path = %req.uri().path(),
                       "API request refused: role not allowed");
        return Err(ApiError::Forbidden(format!(
            "this needs the {} role; the token has the {} role",
            role_name(gate.needs),
            role_name(caller.role)
        )));
    }
    tracing::debug!(caller = %caller.name, path = %req.uri().path(), "API request authorized");
    req.extensions_mut().insert(caller);
    Ok(next.run(req).await)
}

/// The caller whose bearer token is in `headers`.
pub fn authenticate(tokens: &[TokenConfig], headers: &HeaderMap) -> Result<Caller, ApiError> {
    let Some(token) = bearer_token(headers) else {
        tracing::debug!("API request without a bearer token");
        return Err(ApiError::Unauthenticated);
    };
    let hash = token_hash(token);
    let mut found: Option<&TokenConfig> = None;
    for t in tokens {
        // Every configured hash is compared, all of its bytes.
        if hex_eq_ct(hash.as_bytes(), t.sha256.as_bytes()) && found.is_none() {
            found = Some(t);
        }
    }
    match found {
        Some(t) => Ok(Caller {
            name: t.name.clone(),
            role: t.role,
        }),
        None => {
            tracing::info!("API request with an unknown bearer token");
            Err(ApiError::Unauthenticated)
        }
    }
}

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive).
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Equality of two hex strings, ASCII case-insensitive, in time that depends
/// only on their lengths (which are public: 64 for a SHA-256).
fn hex_eq_ct(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| {
        acc | (x.to_ascii_lowercase() ^ y.to_ascii_lowercase())
    });
    std::hint::black_box(diff) == 0
}

pub(super) fn role_name(role: Role) -> &'static str {
    match role {
        Role::Reader => "reader",
        Role::Steward => "steward",
        Role::Auditor => "auditor",
        Role::Admin => "admin",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn tokens() -> Vec<TokenConfig> {
        vec![
            TokenConfig {
                name: "ops".into(),
                role: Role::Reader,
                sha256: token_hash("s3cret").to_uppercase(),
            },
            TokenConfig {
                name: "audit".into(),
                role: Role::Auditor,
                sha256: token_hash("other"),
            },
        ]
    }

    fn with_auth(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn finds_the_token_by_hash_in_any_hex_case() {
        let c = authenticate(&tokens(), &with_auth("Bearer s3cret")).unwrap();
        assert_eq!(c.name, "ops");
        let c = authenticate(&tokens(), &with_auth("bearer  other ")).unwrap();
        assert_eq!(c.role, Role::Auditor);
    }

    #[test]
    fn refuses_missing_unknown_and_non_bearer() {
        for h in [
            HeaderMap::new(),
            with_auth("Bearer nope"),
            with_auth("Basic s3cret"),
            with_auth("Bearer "),
            with_auth("s3cret"),
        ] {
            assert!(matches!(
                authenticate(&tokens(), &h),
                Err(ApiError::Unauthenticated)
            ));
        }
    }

    #[test]
    fn constant_time_compare() {
        assert!(hex_eq_ct(b"ab12", b"AB12"));
        assert!(!hex_eq_ct(b"ab12", b"ab13"));
        assert!(!hex_eq_ct(b"ab12", b"ab1"));
    }
}
