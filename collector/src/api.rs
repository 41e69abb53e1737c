//! The HTTP API, the metrics endpoint and the console, on one axum router.
//!
//! `GET /metrics`, `/healthz` and `/openapi.json` need no token; `/metrics` carries the
//! per-enterprise series (`enterprise` and `scenario` labels) only for a regulator token (an
//! operator token: its own gateways), everyone else gets them summed over those labels.
//! Everything under `/api/v1/` needs `Authorization: Bearer TOKEN`; tokens are configured as
//! SHA-256 hashes with a role:
//! `regulator` sees everything, `operator` its listed gateways, `enterprise` its own enterprise.
//! Filters are intersected with the role's scope in SQL, and an id outside the scope answers 404
//! exactly like an id that does not exist, so existence does not leak.
//!
//! Query strings are decoded by axum's `Query` extractor (`application/x-www-form-urlencoded`
//! rules: `+` is a space, an invalid `%` escape stays literal) into typed structs that refuse
//! unknown parameters; the console under `/console/` ([`crate::console`]) calls the same
//! functions as these handlers ([`act`], [`Shared::blocking`]).

pub mod shape;

use crate::metrics::{Metrics, View};
use crate::store::{
    AlertFilter, Change, IncidentFilter, Scope, Store, StoreError, Transition, TransitionOutcome,
};
use crate::util::{parse_rfc3339_ms, sha256_hex};
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use crossline_config::collector::{CollectorConfig, Role, Token};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// The OpenAPI 3 document of every endpoint (ingest and API).
pub const OPENAPI: &str = include_str!("../openapi.json");

/// Largest request body on the API listener (acknowledge/resolve comments, console forms).
pub const MAX_BODY: usize = 64 << 10;

/// What every handler reaches: the store, the metrics, the configuration and console sessions.
#[derive(Debug)]
pub struct Shared {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Configuration (tokens, registry labels).
    pub config: Arc<CollectorConfig>,
    /// Console sign-ins.
    pub sessions: crate::console::Sessions,
    /// The full registry (filings with basis and validity) for the console, when configured
    /// and readable.
    pub registry: Option<crossline_config::Registry>,
    /// The clock handlers read (the system clock, set by `main`).
    pub clock: crate::util::Clock,
}

/// The API service.
#[derive(Debug)]
pub struct Api {
    router: Router,
}

/// A refusal: status and message (JSON `{"error": ...}` on the API, a page on the console).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fail(pub StatusCode, pub String);

impl Fail {
    /// 404 with the fixed message used for ids that do not exist and ids outside the scope.
    pub fn not_found() -> Fail {
        Fail(StatusCode::NOT_FOUND, "not found".into())
    }
    fn bad(m: impl Into<String>) -> Fail {
        Fail(StatusCode::BAD_REQUEST, m.into())
    }
}

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        let mut r = json(self.0, &json!({ "error": self.1 }));
        if self.0 == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert("www-authenticate", HeaderValue::from_static("Bearer"));
        }
        r
    }
}

fn json(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body.to_string(),
    )
        .into_response()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The configured token whose SHA-256 matches `token` (compared in constant time, all checked).
pub fn token_of<'a>(config: &'a CollectorConfig, token: &str) -> Option<&'a Token> {
    let hash = sha256_hex(token.trim().as_bytes());
    let mut found = None;
    for t in &config.tokens {
        if constant_time_eq(t.sha256.as_bytes(), hash.as_bytes()) {
            found = Some(t);
        }
    }
    found
}

fn bearer<'a>(config: &'a CollectorConfig, headers: &HeaderMap) -> Option<&'a Token> {
    let h = headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = h.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    token_of(config, token)
}

/// An authenticated API caller (`Authorization: Bearer`); 401 otherwise.
#[derive(Debug)]
pub struct Authed(pub Token);

impl FromRequestParts<Arc<Shared>> for Authed {
    type Rejection = Fail;
    async fn from_request_parts(parts: &mut Parts, st: &Arc<Shared>) -> Result<Self, Fail> {
        bearer(&st.config, &parts.headers)
            .cloned()
            .map(Authed)
            .ok_or_else(|| {
                Fail(
                    StatusCode::UNAUTHORIZED,
                    "missing or unknown bearer token".into(),
                )
            })
    }
}

/// A typed query string; a parameter that is not a field, or a value of the wrong type, is a
/// 400 with the parameter named.
#[derive(Debug)]
pub struct Q<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Q<T> {
    type Rejection = Fail;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Fail> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(v)| Q(v))
            .map_err(|e| Fail::bad(e.body_text()))
    }
}

impl Shared {
    /// Run a store call on a blocking thread; a store error is a 503 (logged).
    pub async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, Fail> {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || f(store.as_ref())).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                eprintln!("crossline-collector: api: {e}");
                Err(Fail(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store unavailable".into(),
                ))
            }
            Err(_) => Err(Fail(
                StatusCode::SERVICE_UNAVAILABLE,
                "store task failed".into(),
            )),
        }
    }
}

/// A positive decimal id, or 404 (a malformed id is as unknown as a missing one).
pub fn id_of(s: &str) -> Result<i64, Fail> {
    s.parse::<i64>()
        .ok()
        .filter(|i| *i > 0)
        .ok_or_else(Fail::not_found)
}

/// A time parameter: RFC 3339 or Unix seconds; empty means "not given".
fn time_param(key: &str, v: Option<&str>) -> Result<Option<i64>, Fail> {
    match v {
        None | Some("") => Ok(None),
        Some(v) => {
            if let Ok(secs) = v.parse::<i64>() {
                return Ok(Some(secs.saturating_mul(1000)));
            }
            parse_rfc3339_ms(v).map(Some).ok_or_else(|| {
                Fail::bad(format!(
                    "{key}={v:?} is not a time (expected RFC 3339 or Unix seconds)"
                ))
            })
        }
    }
}

/// Page size and offset. The offset is 64-bit as documented; the store pages with 32 bits, and
/// an offset beyond that is past every row anyway.
pub fn page(limit: Option<u32>, offset: Option<u64>) -> Result<(u32, u64, u32), Fail> {
    let limit = limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Fail::bad(format!(
            "limit={limit} must be between 1 and 1000"
        )));
    }
    let offset = offset.unwrap_or(0);
    Ok((limit, offset, u32::try_from(offset).unwrap_or(u32::MAX)))
}

/// Refuse a value outside a closed set.
fn one_of(key: &str, v: Option<&str>, allowed: &[&str]) -> Result<(), Fail> {
    match v {
        Some(s) if !allowed.contains(&s) => Err(Fail::bad(format!(
            "{key}={s:?}: expected one of {}",
            allowed.join(", ")
        ))),
        _ => Ok(()),
    }
}

/// Incident statuses.
pub const STATUSES: [&str; 4] = ["open", "notified", "acknowledged", "resolved"];

/// Acknowledge or resolve an incident as `token`, with the same rules for the API and the
/// console: 404 outside the scope (existence first), 403 for enterprise tokens, 409 when the
/// state does not allow it.
pub async fn act(
    shared: &Shared,
    token: &Token,
    id: i64,
    action: Transition,
    comment: String,
) -> Result<Value, Fail> {
    let scope = Scope::of(token);
    let s2 = scope.clone();
    if shared
        .blocking(move |s| s.incident(&s2, id))
        .await?
        .is_none()
    {
        return Err(Fail::not_found());
    }
    if token.role == Role::Enterprise {
        return Err(Fail(
            StatusCode::FORBIDDEN,
            "enterprise tokens cannot change incidents".into(),
        ));
    }
    let actor = token.name.clone();
    let role = token.role.as_str();
    let now = shared.clock.now_ms();
    let outcome = shared
        .blocking(move |s| {
            s.transition(
                &scope,
                id,
                &Change {
                    action,
                    actor: &actor,
                    role,
                    comment: &comment,
                    now_ms: now,
                },
            )
        })
        .await?;
    match outcome {
        TransitionOutcome::NotFound => Err(Fail::not_found()),
        TransitionOutcome::Conflict(m) => Err(Fail(StatusCode::CONFLICT, m)),
        TransitionOutcome::Done(inc, history) => Ok(shape::with_history(&inc, &history)),
    }
}

/// One incident in scope with, when `zh`, its Chinese report block (`report_zh`).
pub async fn incident_view(
    shared: &Shared,
    scope: Scope,
    id: i64,
    zh: bool,
) -> Result<Value, Fail> {
    match shared.blocking(move |s| s.incident(&scope, id)).await? {
        Some(d) => {
            let mut a = shape::detail(&shared.config, &d);
            if zh {
                let block = crate::report::render_zh(&a);
                if let Value::Object(m) = &mut a {
                    m.insert("report_zh".into(), block);
                }
            }
            Ok(a)
        }
        None => Err(Fail::not_found()),
    }
}

type Shr = State<Arc<Shared>>;

async fn healthz(State(st): Shr) -> Response {
    // Unhealthy while the database is unreachable (PostgreSQL store).
    let store = st.store.clone();
    match tokio::task::spawn_blocking(move || store.healthy()).await {
        Ok(Ok(())) => json(StatusCode::OK, &json!({"status": "ok"})),
        Ok(Err(reason)) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"status": "unhealthy", "reason": reason}),
        ),
        Err(_) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"status": "unhealthy", "reason": "store task failed"}),
        ),
    }
}

async fn openapi() -> Response {
    (
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        OPENAPI,
    )
        .into_response()
}

async fn metrics_text(State(st): Shr, headers: HeaderMap) -> Response {
    let now = st.clock.now_ms();
    if let Ok(g) = st.blocking(move |s| s.gauges(now)).await {
        st.metrics.set_gauges(&g);
    }
    let view = match bearer(&st.config, &headers) {
        Some(t) if t.role == Role::Regulator => View::Full,
        Some(t) if t.role == Role::Operator => View::Gateways(t.gateways.clone()),
        _ => View::Aggregated,
    };
    (
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        st.metrics.render(&view),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertsQuery {
    gateway: Option<String>,
    enterprise: Option<String>,
    kind: Option<String>,
    severity: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<u32>,
    offset: Option<u64>,
}

async fn alerts(
    State(st): Shr,
    Authed(token): Authed,
    Q(q): Q<AlertsQuery>,
) -> Result<Response, Fail> {
    let (limit, offset, offset32) = page(q.limit, q.offset)?;
    if let Some(s) = &q.severity {
        if crossline_config::collector::parse_severity(s).is_none() {
            return Err(Fail::bad(format!(
                "severity={s:?}: expected info, low, med, high or crit"
            )));
        }
    }
    if let Some(k) = &q.kind {
        if !crate::incident::known_kind(k) {
            return Err(Fail::bad(format!("kind={k:?} is not an alert kind")));
        }
    }
    let f = AlertFilter {
        since_ms: time_param("since", q.since.as_deref())?,
        until_ms: time_param("until", q.until.as_deref())?,
        gateway: q.gateway,
        enterprise: q.enterprise,
        kind: q.kind,
        severity: q.severity,
        limit,
        offset: offset32,
    };
    let scope = Scope::of(&token);
    let items: Vec<Value> = st
        .blocking(move |s| s.alerts(&scope, &f))
        .await?
        .iter()
        .map(shape::alert)
        .collect();
    Ok(json(
        StatusCode::OK,
        &json!({"items": items, "limit": limit, "offset": offset}),
    ))
}

async fn alert(
    State(st): Shr,
    Authed(token): Authed,
    Path(id): Path<String>,
) -> Result<Response, Fail> {
    let id = id_of(&id)?;
    let scope = Scope::of(&token);
    match st.blocking(move |s| s.alert(&scope, id)).await? {
        Some(a) => Ok(json(StatusCode::OK, &shape::alert(&a))),
        None => Err(Fail::not_found()),
    }
}

/// `GET /api/v1/incidents` parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentsQuery {
    /// Status.
    pub status: Option<String>,
    /// Grade.
    pub grade: Option<String>,
    /// Enterprise id.
    pub enterprise: Option<String>,
    /// Gateway id.
    pub gateway: Option<String>,
    /// Page size.
    pub limit: Option<u32>,
    /// Page offset.
    pub offset: Option<u64>,
}

impl IncidentsQuery {
    /// The store filter (validated), the page size and the 64-bit offset.
    pub fn filter(self) -> Result<(IncidentFilter, u32, u64), Fail> {
        let (limit, offset, offset32) = page(self.limit, self.offset)?;
        one_of("status", self.status.as_deref(), &STATUSES)?;
        let some = |v: Option<String>| v.filter(|s| !s.is_empty());
        Ok((
            IncidentFilter {
                status: some(self.status),
                grade: some(self.grade),
                enterprise: some(self.enterprise),
                gateway: some(self.gateway),
                limit,
                offset: offset32,
            },
            limit,
            offset,
        ))
    }
}

async fn incidents(
    State(st): Shr,
    Authed(token): Authed,
    Q(q): Q<IncidentsQuery>,
) -> Result<Response, Fail> {
    let (f, limit, offset) = q.filter()?;
    let scope = Scope::of(&token);
    let items: Vec<Value> = st
        .blocking(move |s| s.incidents(&scope, &f))
        .await?
        .iter()
        .map(shape::incident)
        .collect();
    Ok(json(
        StatusCode::OK,
        &json!({"items": items, "limit": limit, "offset": offset}),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LangQuery {
    lang: Option<String>,
}

async fn incident(
    State(st): Shr,
    Authed(token): Authed,
    Path(id): Path<String>,
    Q(q): Q<LangQuery>,
) -> Result<Response, Fail> {
    let id = id_of(&id)?;
    one_of("lang", q.lang.as_deref(), &["en", "zh"])?;
    let zh = q.lang.as_deref() == Some("zh");
    let v = incident_view(&st, Scope::of(&token), id, zh).await?;
    Ok(json(StatusCode::OK, &v))
}

/// The comment of an acknowledge/resolve body: empty body or `{}` is no comment; `comment`
/// must be a string when present (`null` is refused as the schema says).
pub fn comment_of(body: &[u8]) -> Result<String, Fail> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(String::new());
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| Fail::bad(format!("body: {e}; expected {{\"comment\": \"...\"}}")))?;
    let Value::Object(m) = v else {
        return Err(Fail::bad(
            "body must be a JSON object {\"comment\": \"...\"}",
        ));
    };
    match m.get("comment") {
        None => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(Fail::bad("comment must be a string")),
    }
}

async fn transition(
    st: Arc<Shared>,
    token: Token,
    id: String,
    action: Transition,
    body: Bytes,
) -> Result<Response, Fail> {
    let id = id_of(&id)?;
    let comment = comment_of(&body)?;
    let v = act(&st, &token, id, action, comment).await?;
    Ok(json(StatusCode::OK, &v))
}

async fn acknowledge(
    State(st): Shr,
    Authed(token): Authed,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, Fail> {
    transition(st, token, id, Transition::Acknowledge, body).await
}

async fn resolve(
    State(st): Shr,
    Authed(token): Authed,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, Fail> {
    transition(st, token, id, Transition::Resolve, body).await
}

async fn summary(
    State(st): Shr,
    Authed(token): Authed,
    Path(id): Path<String>,
) -> Result<Response, Fail> {
    let scope = Scope::of(&token);
    if let Scope::Enterprise(own) = &scope {
        if *own != id {
            return Err(Fail::not_found());
        }
    }
    if let Some(reg) = &st.config.registry {
        if reg.enterprise(&id).is_none() {
            return Err(Fail::not_found());
        }
    }
    // Enterprise-wide figures (crate::sketch) span every gateway: not for an operator token
    // limited to some gateways.
    let wide = !matches!(scope, Scope::Gateways(_));
    let today = st.clock.today_beijing();
    let v = st
        .blocking(move |s| {
            let mut v = shape::summary(&s.enterprise_summary(&scope, &id)?);
            if wide {
                let w = crate::sketch::summary(s, &id, today.year, &today.to_string())?;
                if let Some(m) = v.as_object_mut() {
                    m.insert("enterprise_wide".into(), w);
                }
            }
            Ok(v)
        })
        .await?;
    Ok(json(StatusCode::OK, &v))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    incident: Option<String>,
    limit: Option<u32>,
    offset: Option<u64>,
}

async fn audit(
    State(st): Shr,
    Authed(token): Authed,
    Q(q): Q<AuditQuery>,
) -> Result<Response, Fail> {
    if token.role != Role::Regulator {
        return Err(Fail(
            StatusCode::FORBIDDEN,
            "the audit log is for regulator tokens only".into(),
        ));
    }
    let (limit, offset, offset32) = page(q.limit, q.offset)?;
    let incident =
        match q.incident.as_deref() {
            None | Some("") => None,
            Some(v) => Some(v.parse::<i64>().ok().filter(|i| *i > 0).ok_or_else(|| {
                Fail::bad(format!("incident={v:?} must be a positive incident id"))
            })?),
        };
    let items: Vec<Value> = st
        .blocking(move |s| s.audit(incident, limit, offset32))
        .await?
        .iter()
        .map(shape::audit)
        .collect();
    Ok(json(
        StatusCode::OK,
        &json!({"items": items, "limit": limit, "offset": offset}),
    ))
}

/// Unknown paths: 401 under `/api/v1/` without a valid token (as every API path), 404 otherwise.
async fn fallback(State(st): Shr, parts: Parts) -> Fail {
    if parts.uri.path().starts_with("/api/v1/") && bearer(&st.config, &parts.headers).is_none() {
        return Fail(
            StatusCode::UNAUTHORIZED,
            "missing or unknown bearer token".into(),
        );
    }
    Fail::not_found()
}

impl Api {
    /// The service; `clock` is what its handlers read (the registry's filings are judged on
    /// its Beijing day).
    pub fn new(
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        config: Arc<CollectorConfig>,
        clock: crate::util::Clock,
    ) -> Api {
        let registry = config.registry_path.as_deref().and_then(|p| {
            match crossline_config::load_registry(p, &[], clock.today_beijing()) {
                Ok((r, _)) => Some(r),
                Err(e) => {
                    eprintln!(
                        "crossline-collector: console: registry {}: {e}; filings are not shown",
                        p.display()
                    );
                    None
                }
            }
        });
        let shared = Arc::new(Shared {
            store,
            metrics,
            config,
            sessions: crate::console::Sessions::default(),
            registry,
            clock,
        });
        let router = Router::new()
            .route("/healthz", get(healthz))
            .route("/openapi.json", get(openapi))
            .route("/metrics", get(metrics_text))
            .route("/api/v1/alerts", get(alerts))
            .route("/api/v1/alerts/{id}", get(alert))
            .route("/api/v1/incidents", get(incidents))
            .route("/api/v1/incidents/{id}", get(incident))
            .route("/api/v1/incidents/{id}/acknowledge", post(acknowledge))
            .route("/api/v1/incidents/{id}/resolve", post(resolve))
            .route("/api/v1/enterprises/{id}/summary", get(summary))
            .route("/api/v1/audit", get(audit))
            .merge(crate::console::routes())
            .fallback(fallback)
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .with_state(shared);
        Api { router }
    }

    /// Handle one request.
    pub async fn handle(
        self: Arc<Self>,
        req: hyper::Request<Incoming>,
    ) -> Result<hyper::Response<Full<Bytes>>, std::convert::Infallible> {
        let mut router = self.router.clone();
        let resp = match tower_service::Service::call(&mut router, req.map(Body::new)).await {
            Ok(r) => r,
            Err(e) => match e {},
        };
        let (parts, body) = resp.into_parts();
        let body = match axum::body::to_bytes(body, usize::MAX).await {
            Ok(b) => b,
            Err(e) => {
                eprintln!("crossline-collector: api: response body: {e}");
                Bytes::new()
            }
        };
        Ok(hyper::Response::from_parts(parts, Full::new(body)))
    }
}
