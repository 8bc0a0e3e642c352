//! Requests to one REST collection, and what each failure means for the
//! runner: the API away (no connection, a timeout, a 5xx, 429) is
//! `Unavailable`; a 4xx on one record is that record's `Record` error; a
//! refused token or a collection that does not exist is `Fatal`.
//!
//! Errors name the method, the collection, the record id and the status,
//! never a response body: it may echo customer values.

use std::time::Duration;

use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::{Client, Method, RequestBuilder, Response, StatusCode, Url};
use serde_json::{Map, Value};

use super::config::HttpConfig;
use crate::contract::ConnectorError;

/// One record as the API sends it: a JSON object.
pub(crate) type Record = Map<String, Value>;

/// A client for one collection.
#[derive(Debug, Clone)]
pub(crate) struct Api {
    client: Client,
    collection: Url,
    /// `Bearer <token>`, marked sensitive so that it is never logged.
    auth: Option<HeaderValue>,
}

/// The outcome of a request about one record.
pub(crate) enum Answer<T> {
    Done(T),
    /// 404: the record does not exist.
    NotFound,
}

impl Api {
    /// A client for `cfg`'s collection; reads the token from `token_env`.
    pub(crate) fn new(cfg: &HttpConfig) -> Result<Self, ConnectorError> {
        let collection = cfg.collection_url()?;
        let auth = match &cfg.token_env {
            None => None,
            Some(var) => {
                let token = std::env::var(var).map_err(|_| {
                    ConnectorError::Fatal(format!(
                        "http.token_env: environment variable {var} is not set (or not UTF-8)"
                    ))
                })?;
                let mut value = HeaderValue::from_str(&format!("Bearer {}", token.trim()))
                    .map_err(|_| {
                        ConnectorError::Fatal(format!(
                            "http.token_env: the token in {var} is not valid in an HTTP header"
                        ))
                    })?;
                value.set_sensitive(true);
                Some(value)
            }
        };
        let client = Client::builder()
            .connect_timeout(Duration::from_millis(cfg.connect_timeout_ms))
            .timeout(Duration::from_millis(cfg.request_timeout_ms))
            .build()
            .map_err(|e| ConnectorError::Fatal(format!("http: cannot build a client: {e}")))?;
        Ok(Api {
            client,
            collection,
            auth,
        })
    }

    /// The collection's path, for messages.
    pub(crate) fn name(&self) -> &str {
        self.collection.path()
    }

    /// `GET <collection>?<query>`: a page of records and the `X-Total-Count`
    /// the API reported, if any.
    pub(crate) async fn list(
        &self,
        query: &[(String, String)],
    ) -> Result<(Vec<Record>, Option<u64>), ConnectorError> {
        let mut url = self.collection.clone();
        url.query_pairs_mut().extend_pairs(query);
        let response = self
            .send(self.client.get(url), "GET", None)
            .await?
            .map_err(|status| self.list_error(status))?;
        let total = response
            .headers()
            .get("x-total-count")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let body = self.body(response, "GET", None).await?;
        let Value::Array(items) = body else {
            return Err(ConnectorError::Unavailable(format!(
                "GET {}: the answer is not a JSON array",
                self.name()
            )));
        };
        let mut records = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            match item {
                Value::Object(record) => records.push(record),
                _ => {
                    return Err(ConnectorError::Unavailable(format!(
                        "GET {}: item {i} of the answer is not a JSON object",
                        self.name()
                    )))
                }
            }
        }
        Ok((records, total))
    }

    /// `GET <collection>/<id>`.
    pub(crate) async fn get(&self, id: &str) -> Result<Answer<Record>, ConnectorError> {
        self.one(Method::GET, id, None).await
    }

    /// `POST <collection>` with `body`: the record as the API created it.
    pub(crate) async fn create(&self, body: &Record) -> Result<Record, ConnectorError> {
        let request = self.client.post(self.collection.clone()).json(body);
        let response = self
            .send(request, "POST", None)
            .await?
            .map_err(|status| self.record_error("POST", "(new record)", status))?;
        self.object(response, "POST", "(new record)").await
    }

    /// `PATCH` or `PUT <collection>/<id>` with `body`.
    pub(crate) async fn update(
        &self,
        method: Method,
        id: &str,
        body: &Record,
    ) -> Result<Answer<Record>, ConnectorError> {
        self.one(method, id, Some(body)).await
    }

    /// `DELETE <collection>/<id>`.
    pub(crate) async fn delete(&self, id: &str) -> Result<Answer<()>, ConnectorError> {
        let verb = "DELETE";
        let request = self.client.delete(self.record_url(id)?);
        match self.send(request, verb, Some(id)).await? {
            Ok(_) => Ok(Answer::Done(())),
            Err(StatusCode::NOT_FOUND) => Ok(Answer::NotFound),
            Err(status) => Err(self.record_error(verb, id, status)),
        }
    }

    async fn one(
        &self,
        method: Method,
        id: &str,
        body: Option<&Record>,
    ) -> Result<Answer<Record>, ConnectorError> {
        let verb = method.as_str().to_string();
        let mut request = self.client.request(method, self.record_url(id)?);
        if let Some(body) = body {
            request = request.json(body);
        }
        match self.send(request, &verb, Some(id)).await? {
            Ok(response) => self.object(response, &verb, id).await.map(Answer::Done),
            Err(StatusCode::NOT_FOUND) => Ok(Answer::NotFound),
            Err(status) => Err(self.record_error(&verb, id, status)),
        }
    }

    /// `<collection>/<id>` with the id as one percent-encoded path segment
    /// (`/`, `%`, spaces, quotes and non-ASCII included).
    fn record_url(&self, id: &str) -> Result<Url, ConnectorError> {
        // `.` and `..` are dot segments: every URL parser removes them, so
        // such a record cannot be addressed at all.
        if id.is_empty() || id == "." || id == ".." {
            return Err(ConnectorError::Record {
                record_id: id.to_string(),
                reason: format!(
                    "{}: an empty, `.` or `..` id cannot be a URL path segment",
                    self.name()
                ),
            });
        }
        let mut url = self.collection.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.push(id);
        }
        Ok(url)
    }

    /// Sends the request. `Err` when the API is away; `Ok(Err(status))` for
    /// an answer that is not a success and not a server error (those two
    /// mean "away" too), for the caller to judge.
    async fn send(
        &self,
        mut request: RequestBuilder,
        verb: &str,
        id: Option<&str>,
    ) -> Result<Result<Response, StatusCode>, ConnectorError> {
        if let Some(auth) = &self.auth {
            request = request.header(AUTHORIZATION, auth.clone());
        }
        let what = || match id {
            Some(id) => format!("{verb} {} record {id:?}", self.name()),
            None => format!("{verb} {}", self.name()),
        };
        let response = request.send().await.map_err(|e| {
            // Without the URL: it holds the record id, already named, and
            // reqwest's text would repeat it percent-encoded.
            ConnectorError::Unavailable(format!("{}: {}", what(), transport_reason(&e)))
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(Ok(response));
        }
        if status.is_server_error()
            || status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT
        {
            return Err(ConnectorError::Unavailable(format!(
                "{}: the API answered {status}",
                what()
            )));
        }
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(ConnectorError::Fatal(format!(
                "{}: the API answered {status}; check the token (http.token_env)",
                what()
            )));
        }
        Ok(Err(status))
    }

    fn list_error(&self, status: StatusCode) -> ConnectorError {
        ConnectorError::Fatal(format!(
            "GET {}: the API answered {status}; check http.base_url and http.collection",
            self.name()
        ))
    }

    /// A `Record` error for `verb` on record `id` answered with `status`.
    pub(crate) fn record_error(&self, verb: &str, id: &str, status: StatusCode) -> ConnectorError {
        ConnectorError::Record {
            record_id: id.to_string(),
            reason: format!("{verb} {}: the API answered {status}", self.name()),
        }
    }

    async fn body(
        &self,
        response: Response,
        verb: &str,
        id: Option<&str>,
    ) -> Result<Value, ConnectorError> {
        let what = match id {
            Some(id) => format!("{verb} {} record {id:?}", self.name()),
            None => format!("{verb} {}", self.name()),
        };
        let bytes = response.bytes().await.map_err(|e| {
            ConnectorError::Unavailable(format!(
                "{what}: reading the answer: {}",
                transport_reason(&e)
            ))
        })?;
        serde_json::from_slice(&bytes).map_err(|e| {
            ConnectorError::Unavailable(format!(
                "{what}: the answer is not JSON (line {} column {})",
                e.line(),
                e.column()
            ))
        })
    }

    async fn object(
        &self,
        response: Response,
        verb: &str,
        id: &str,
    ) -> Result<Record, ConnectorError> {
        match self.body(response, verb, Some(id)).await? {
            Value::Object(record) => Ok(record),
            _ => Err(ConnectorError::Record {
                record_id: id.to_string(),
                reason: format!("{verb} {}: the answer is not a JSON object", self.name()),
            }),
        }
    }
}

/// Why a request got no answer, without the URL (which may hold a record
/// id or a token in a query).
fn transport_reason(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "the answer broke off"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    // The innermost cause says the most ("Connection refused").
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind} ({detail})")
    }
}
