//! The HTTP API and metrics listener.
//!
//! `GET /metrics`, `/healthz` and `/openapi.json` need no token; `/metrics` carries the
//! per-enterprise series (`enterprise` and `scenario` labels) only for a regulator token (an
//! operator token: its own gateways), everyone else gets them summed over those labels.
//! Everything under `/api/v1/` needs `Authorization: Bearer TOKEN`; tokens are configured as
//! SHA-256 hashes with a role:
//! `regulator` sees everything, `operator` its listed gateways, `enterprise` its own enterprise.
//! Filters are intersected with the role's scope in SQL, and an id outside the scope answers 404
//! exactly like an id that does not exist, so existence does not leak.

use crate::ingest::json_response;
use crate::metrics::{Metrics, View};
use crate::store::{
    AlertFilter, Change, IncidentFilter, Scope, Store, Transition, TransitionOutcome,
};
use crate::util::{now_ms, parse_rfc3339_ms, sha256_hex};
use bytes::Bytes;
use crossline_config::collector::{CollectorConfig, Role, Token};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// The OpenAPI 3 document of every endpoint (ingest and API).
pub const OPENAPI: &str = include_str!("../openapi.json");

/// The API service.
#[derive(Debug)]
pub struct Api {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    config: Arc<CollectorConfig>,
}

type Resp = Response<Full<Bytes>>;

fn error(status: StatusCode, message: impl Into<String>) -> Resp {
    json_response(status, &json!({ "error": message.into() }))
}

fn not_found() -> Resp {
    error(StatusCode::NOT_FOUND, "not found")
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn query(req: &Request<Incoming>) -> Result<HashMap<String, String>, String> {
    let mut m = HashMap::new();
    if let Some(q) = req.uri().query() {
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = percent_decode(k).ok_or_else(|| format!("bad query parameter {k:?}"))?;
            let v = percent_decode(v).ok_or_else(|| format!("bad value for {k:?}"))?;
            m.insert(k, v);
        }
    }
    Ok(m)
}

fn check_keys(q: &HashMap<String, String>, allowed: &[&str]) -> Result<(), String> {
    for k in q.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(format!(
                "unknown query parameter {k:?}; expected one of {}",
                allowed.join(", ")
            ));
        }
    }
    Ok(())
}

fn time_param(q: &HashMap<String, String>, key: &str) -> Result<Option<i64>, String> {
    match q.get(key) {
        None => Ok(None),
        Some(v) => {
            if let Ok(secs) = v.parse::<i64>() {
                return Ok(Some(secs.saturating_mul(1000)));
            }
            parse_rfc3339_ms(v).map(Some).ok_or_else(|| {
                format!("{key}={v:?} is not a time (expected RFC 3339 or Unix seconds)")
            })
        }
    }
}

fn page(q: &HashMap<String, String>) -> Result<(u32, u32), String> {
    let limit = match q.get("limit") {
        None => 100,
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| format!("limit={v:?} must be between 1 and 1000"))?,
    };
    let offset = match q.get("offset") {
        None => 0,
        Some(v) => v
            .parse::<u32>()
            .map_err(|_| format!("offset={v:?} must be a non-negative integer"))?,
    };
    Ok((limit, offset))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Api {
    /// The service.
    pub fn new(store: Arc<dyn Store>, metrics: Arc<Metrics>, config: Arc<CollectorConfig>) -> Api {
        Api {
            store,
            metrics,
            config,
        }
    }

    fn authenticate(&self, req: &Request<Incoming>) -> Option<&Token> {
        let h = req.headers().get("authorization")?.to_str().ok()?;
        let (scheme, token) = h.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let hash = sha256_hex(token.trim().as_bytes());
        let mut found = None;
        for t in &self.config.tokens {
            if constant_time_eq(t.sha256.as_bytes(), hash.as_bytes()) {
                found = Some(t);
            }
        }
        found
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> Result<T, crate::store::StoreError> + Send + 'static,
    ) -> Result<T, Resp> {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || f(store.as_ref())).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                eprintln!("crossline-collector: api: {e}");
                Err(error(StatusCode::SERVICE_UNAVAILABLE, "store unavailable"))
            }
            Err(_) => Err(error(StatusCode::SERVICE_UNAVAILABLE, "store task failed")),
        }
    }

    /// Handle one request.
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Resp, std::convert::Infallible> {
        Ok(match self.route(req).await {
            Ok(r) | Err(r) => r,
        })
    }

    async fn route(&self, req: Request<Incoming>) -> Result<Resp, Resp> {
        let path = req.uri().path().to_string();
        let method = req.method().clone();
        match (method.clone(), path.as_str()) {
            (Method::GET, "/healthz") => {
                // Unhealthy while the database is unreachable (PostgreSQL store).
                let store = self.store.clone();
                let health = tokio::task::spawn_blocking(move || store.healthy()).await;
                return Ok(match health {
                    Ok(Ok(())) => json_response(StatusCode::OK, &json!({"status": "ok"})),
                    Ok(Err(reason)) => json_response(
                        StatusCode::SERVICE_UNAVAILABLE,
                        &json!({"status": "unhealthy", "reason": reason}),
                    ),
                    Err(_) => json_response(
                        StatusCode::SERVICE_UNAVAILABLE,
                        &json!({"status": "unhealthy", "reason": "store task failed"}),
                    ),
                });
            }
            (Method::GET, "/openapi.json") => {
                let mut r = Response::new(Full::new(Bytes::from_static(OPENAPI.as_bytes())));
                r.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                return Ok(r);
            }
            (Method::GET, "/metrics") => {
                let now = now_ms();
                if let Ok(g) = self.blocking(move |s| s.gauges(now)).await {
                    self.metrics.set_gauges(&g);
                }
                let view = match self.authenticate(&req) {
                    Some(t) if t.role == Role::Regulator => View::Full,
                    Some(t) if t.role == Role::Operator => View::Gateways(t.gateways.clone()),
                    _ => View::Aggregated,
                };
                let mut r = Response::new(Full::new(Bytes::from(self.metrics.render(&view))));
                r.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                return Ok(r);
            }
            _ => {}
        }
        let Some(rest) = path.strip_prefix("/api/v1/") else {
            return Err(not_found());
        };
        let Some(token) = self.authenticate(&req) else {
            let mut r = error(StatusCode::UNAUTHORIZED, "missing or unknown bearer token");
            r.headers_mut()
                .insert("www-authenticate", HeaderValue::from_static("Bearer"));
            return Err(r);
        };
        let scope = Scope::of(token);
        let q = query(&req).map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
        let bad = |e: String| error(StatusCode::BAD_REQUEST, e);
        let parts: Vec<&str> = rest.split('/').collect();
        let id_of = |s: &str| s.parse::<i64>().ok().filter(|i| *i > 0);
        match (method, parts.as_slice()) {
            (Method::GET, ["alerts"]) => {
                check_keys(
                    &q,
                    &[
                        "gateway",
                        "enterprise",
                        "kind",
                        "severity",
                        "since",
                        "until",
                        "limit",
                        "offset",
                    ],
                )
                .map_err(bad)?;
                let (limit, offset) = page(&q).map_err(bad)?;
                if let Some(s) = q.get("severity") {
                    if crossline_config::collector::parse_severity(s).is_none() {
                        return Err(bad(format!(
                            "severity={s:?}: expected info, low, med, high or crit"
                        )));
                    }
                }
                if let Some(k) = q.get("kind") {
                    if !crate::incident::known_kind(k) {
                        return Err(bad(format!("kind={k:?} is not an alert kind")));
                    }
                }
                let f = AlertFilter {
                    gateway: q.get("gateway").cloned(),
                    enterprise: q.get("enterprise").cloned(),
                    kind: q.get("kind").cloned(),
                    severity: q.get("severity").cloned(),
                    since_ms: time_param(&q, "since").map_err(bad)?,
                    until_ms: time_param(&q, "until").map_err(bad)?,
                    limit,
                    offset,
                };
                let items = self.blocking(move |s| s.alerts(&scope, &f)).await?;
                Ok(json_response(
                    StatusCode::OK,
                    &json!({"items": items, "limit": limit, "offset": offset}),
                ))
            }
            (Method::GET, ["alerts", id]) => {
                let id = id_of(id).ok_or_else(not_found)?;
                match self.blocking(move |s| s.alert(&scope, id)).await? {
                    Some(a) => Ok(json_response(StatusCode::OK, &a)),
                    None => Err(not_found()),
                }
            }
            (Method::GET, ["incidents"]) => {
                check_keys(
                    &q,
                    &[
                        "status",
                        "grade",
                        "enterprise",
                        "gateway",
                        "limit",
                        "offset",
                    ],
                )
                .map_err(bad)?;
                let (limit, offset) = page(&q).map_err(bad)?;
                if let Some(s) = q.get("status") {
                    if !["open", "notified", "acknowledged", "resolved"].contains(&s.as_str()) {
                        return Err(bad(format!(
                            "status={s:?}: expected open, notified, acknowledged or resolved"
                        )));
                    }
                }
                let f = IncidentFilter {
                    status: q.get("status").cloned(),
                    grade: q.get("grade").cloned(),
                    enterprise: q.get("enterprise").cloned(),
                    gateway: q.get("gateway").cloned(),
                    limit,
                    offset,
                };
                let items = self.blocking(move |s| s.incidents(&scope, &f)).await?;
                Ok(json_response(
                    StatusCode::OK,
                    &json!({"items": items, "limit": limit, "offset": offset}),
                ))
            }
            (Method::GET, ["incidents", id]) => {
                let id = id_of(id).ok_or_else(not_found)?;
                check_keys(&q, &["lang"]).map_err(bad)?;
                let zh = match q.get("lang").map(String::as_str) {
                    None | Some("en") => false,
                    Some("zh") => true,
                    Some(other) => {
                        return Err(bad(format!("lang={other:?}: expected en or zh")));
                    }
                };
                match self.blocking(move |s| s.incident(&scope, id)).await? {
                    Some(mut a) => {
                        if zh {
                            let block = crate::report::render_zh(&a);
                            if let Value::Object(m) = &mut a {
                                m.insert("report_zh".into(), block);
                            }
                        }
                        Ok(json_response(StatusCode::OK, &a))
                    }
                    None => Err(not_found()),
                }
            }
            (Method::POST, ["incidents", id, action @ ("acknowledge" | "resolve")]) => {
                let id = id_of(id).ok_or_else(not_found)?;
                let transition = if *action == "acknowledge" {
                    Transition::Acknowledge
                } else {
                    Transition::Resolve
                };
                let body = Limited::new(req.into_body(), 64 << 10)
                    .collect()
                    .await
                    .map_err(|_| error(StatusCode::PAYLOAD_TOO_LARGE, "body over 64 KiB"))?
                    .to_bytes();
                let comment = if body.iter().all(u8::is_ascii_whitespace) {
                    String::new()
                } else {
                    let v: Value = serde_json::from_slice(&body).map_err(|e| {
                        bad(format!("body: {e}; expected {{\"comment\": \"...\"}}"))
                    })?;
                    match v.get("comment") {
                        None | Some(Value::Null) => String::new(),
                        Some(Value::String(s)) => s.clone(),
                        Some(_) => return Err(bad("comment must be a string".into())),
                    }
                };
                // Existence first (404 outside the scope), then the role.
                let s2 = scope.clone();
                if self.blocking(move |s| s.incident(&s2, id)).await?.is_none() {
                    return Err(not_found());
                }
                if token.role == Role::Enterprise {
                    return Err(error(
                        StatusCode::FORBIDDEN,
                        "enterprise tokens cannot change incidents",
                    ));
                }
                let actor = token.name.clone();
                let role = token.role.as_str();
                let outcome = self
                    .blocking(move |s| {
                        s.transition(
                            &scope,
                            id,
                            &Change {
                                action: transition,
                                actor: &actor,
                                role,
                                comment: &comment,
                                now_ms: now_ms(),
                            },
                        )
                    })
                    .await?;
                match outcome {
                    TransitionOutcome::NotFound => Err(not_found()),
                    TransitionOutcome::Conflict(m) => Err(error(StatusCode::CONFLICT, m)),
                    TransitionOutcome::Done(v) => Ok(json_response(StatusCode::OK, &v)),
                }
            }
            (Method::GET, ["enterprises", id, "summary"]) => {
                let id = (*id).to_string();
                if let Scope::Enterprise(own) = &scope {
                    if *own != id {
                        return Err(not_found());
                    }
                }
                if let Some(reg) = &self.config.registry {
                    if reg.enterprise(&id).is_none() {
                        return Err(not_found());
                    }
                }
                let v = self
                    .blocking(move |s| s.enterprise_summary(&scope, &id))
                    .await?;
                Ok(json_response(StatusCode::OK, &v))
            }
            (Method::GET, ["audit"]) => {
                if token.role != Role::Regulator {
                    return Err(error(
                        StatusCode::FORBIDDEN,
                        "the audit log is for regulator tokens only",
                    ));
                }
                check_keys(&q, &["incident", "limit", "offset"]).map_err(bad)?;
                let (limit, offset) = page(&q).map_err(bad)?;
                let incident = match q.get("incident") {
                    None => None,
                    Some(v) => Some(v.parse::<i64>().ok().filter(|i| *i > 0).ok_or_else(|| {
                        bad(format!("incident={v:?} must be a positive incident id"))
                    })?),
                };
                let items = self
                    .blocking(move |s| s.audit(incident, limit, offset))
                    .await?;
                Ok(json_response(
                    StatusCode::OK,
                    &json!({"items": items, "limit": limit, "offset": offset}),
                ))
            }
            _ => Err(not_found()),
        }
    }
}
