//! The console: server-rendered pages under `/console/` on the API listener, for regulators,
//! gateway operators and enterprises.
//!
//! Sign-in takes an API token once and gives a session cookie (`HttpOnly`, `SameSite=Strict`,
//! `Secure` when the API listener speaks TLS, 8 hours, sign-out); every form carries the
//! session's CSRF token (the sign-in form a cookie-bound one). The pages call the same store
//! functions and the same [`crate::api::act`] as the API, with the token's [`Scope`], so the
//! role rules have one implementation; an id outside the scope is a 404 like on the API.
//! Pages work without JavaScript; `console.js` only announces new incidents. The
//! Content-Security-Policy allows no inline script or style.

mod page;
mod views;

use crate::api::{act, incident_view, shape, token_of, Fail, Shared, STATUSES};
use crate::store::{IncidentFilter, Scope, Transition};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use crossline_config::collector::{Role, Token};
use page::{esc, Lang, Who};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Session lifetime.
const SESSION_MS: i64 = 8 * 3_600_000;
/// Sessions kept at most (expired ones are dropped first; then sign-in is refused).
const MAX_SESSIONS: usize = 10_000;
/// Incidents per list page.
const PAGE: u32 = 50;
const SESSION_COOKIE: &str = "crossline_session";
const LOGIN_COOKIE: &str = "crossline_login";
const LANG_COOKIE: &str = "crossline_lang";

#[derive(Debug, Clone)]
struct Session {
    /// SHA-256 of the token: looked up in the configuration on every request, so a token
    /// removed from the configuration ends its sessions.
    token_sha256: String,
    csrf: String,
    expires_ms: i64,
}

/// Console sign-ins (session id -> token), in memory: a restart signs everyone out.
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

fn random_hex() -> String {
    let b: [u8; 32] = rand::random();
    crate::util::hex(&b)
}

fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Sessions {
    fn create(&self, token_sha256: &str, now: i64) -> Option<(String, String)> {
        let mut m = self.map.lock().ok()?;
        if m.len() >= MAX_SESSIONS {
            m.retain(|_, s| s.expires_ms > now);
            if m.len() >= MAX_SESSIONS {
                return None;
            }
        }
        let id = random_hex();
        let csrf = random_hex();
        m.insert(
            id.clone(),
            Session {
                token_sha256: token_sha256.to_string(),
                csrf: csrf.clone(),
                expires_ms: now + SESSION_MS,
            },
        );
        Some((id, csrf))
    }

    fn get(&self, id: &str, now: i64) -> Option<Session> {
        let mut m = self.map.lock().ok()?;
        match m.get(id) {
            Some(s) if s.expires_ms > now => Some(s.clone()),
            Some(_) => {
                m.remove(id);
                None
            }
            None => None,
        }
    }

    fn remove(&self, id: &str) {
        if let Ok(mut m) = self.map.lock() {
            m.remove(id);
        }
    }
}

fn cookies(headers: &HeaderMap) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for h in headers.get_all(header::COOKIE) {
        if let Ok(s) = h.to_str() {
            for part in s.split(';') {
                if let Some((k, v)) = part.trim().split_once('=') {
                    out.insert(k.to_string(), v.to_string());
                }
            }
        }
    }
    out
}

fn cookie(shared: &Shared, name: &str, value: &str, max_age: i64, http_only: bool) -> String {
    format!(
        "{name}={value}; Path=/console; Max-Age={max_age}; SameSite=Strict{}{}",
        if http_only { "; HttpOnly" } else { "" },
        if shared.config.api_tls.is_some() {
            "; Secure"
        } else {
            ""
        }
    )
}

/// Language of a request: `?lang=` first, then the cookie; and the cookie to set when the
/// parameter chose it.
fn lang_of(parts: &Parts) -> (Lang, Option<Lang>) {
    let asked = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
        .ok()
        .and_then(|Query(q)| {
            q.into_iter()
                .rev()
                .find(|(k, _)| k == "lang")
                .and_then(|(_, v)| Lang::parse(&v))
        });
    if let Some(l) = asked {
        return (l, Some(l));
    }
    let c = cookies(&parts.headers);
    (
        c.get(LANG_COOKIE)
            .and_then(|v| Lang::parse(v))
            .unwrap_or(Lang::Zh),
        None,
    )
}

/// The path and query of a request without `lang` (for the language switch).
fn path_without_lang(parts: &Parts) -> String {
    let path = parts.uri.path();
    let q: Vec<&str> = parts
        .uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("lang="))
        .collect();
    if q.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", q.join("&"))
    }
}

/// A signed-in console request.
#[derive(Debug)]
pub struct Ctx {
    token: Token,
    sid: String,
    csrf: String,
    lang: Lang,
    set_lang: Option<Lang>,
    here: String,
    shared: Arc<Shared>,
}

impl FromRequestParts<Arc<Shared>> for Ctx {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, st: &Arc<Shared>) -> Result<Self, Response> {
        let (lang, set_lang) = lang_of(parts);
        let c = cookies(&parts.headers);
        let now = st.clock.now_ms();
        let found = c.get(SESSION_COOKIE).and_then(|sid| {
            let s = st.sessions.get(sid, now)?;
            let t = st
                .config
                .tokens
                .iter()
                .find(|t| ct_eq(&t.sha256, &s.token_sha256))?;
            Some((sid.clone(), s, t.clone()))
        });
        match found {
            Some((sid, s, token)) => Ok(Ctx {
                token,
                sid,
                csrf: s.csrf,
                lang,
                set_lang,
                here: path_without_lang(parts),
                shared: st.clone(),
            }),
            None => {
                let mut r = redirect("/console/login");
                if let Some(l) = set_lang {
                    add_cookie(&mut r, &lang_cookie(st, l));
                }
                Err(r)
            }
        }
    }
}

fn lang_cookie(st: &Shared, l: Lang) -> String {
    cookie(
        st,
        LANG_COOKIE,
        if l == Lang::En { "en" } else { "zh" },
        31_536_000,
        false,
    )
}

fn add_cookie(r: &mut Response, c: &str) {
    if let Ok(v) = HeaderValue::from_str(c) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}

fn secure_headers(r: &mut Response) {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

fn redirect(to: &str) -> Response {
    let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response();
    secure_headers(&mut r);
    r
}

fn html(status: StatusCode, body: String) -> Response {
    let mut r = (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        body,
    )
        .into_response();
    secure_headers(&mut r);
    r
}

impl Ctx {
    fn who(&self) -> Who<'_> {
        Who {
            token: &self.token,
            csrf: &self.csrf,
        }
    }
    fn scope(&self) -> Scope {
        Scope::of(&self.token)
    }
    fn page(&self, status: StatusCode, title: &str, body_attrs: &str, content: &str) -> Response {
        let mut r = html(
            status,
            page::frame(
                self.lang,
                title,
                Some(self.who()),
                &self.here,
                body_attrs,
                content,
            ),
        );
        if let Some(l) = self.set_lang {
            add_cookie(&mut r, &lang_cookie(&self.shared, l));
        }
        r
    }
    fn fail(&self, f: Fail) -> Response {
        let title = match f.0 {
            StatusCode::NOT_FOUND => self.lang.t("未找到", "Not found"),
            StatusCode::FORBIDDEN => self.lang.t("无权操作", "Not allowed"),
            StatusCode::CONFLICT => self.lang.t("状态不允许", "Not possible now"),
            StatusCode::BAD_REQUEST => self.lang.t("请求有误", "Bad request"),
            _ => self.lang.t("暂不可用", "Unavailable"),
        };
        let content = format!(
            r#"<h1>{}</h1><p class="error" role="alert">{}</p><p><a href="/console/incidents">{}</a></p>"#,
            esc(title),
            esc(&f.1),
            self.lang.t("返回事件列表", "Back to the incidents")
        );
        self.page(f.0, title, "", &content)
    }
    /// `None` when the form's CSRF token is the session's; the refusal page otherwise.
    fn check_csrf(&self, given: Option<&str>) -> Option<Response> {
        match given {
            Some(g) if ct_eq(g, &self.csrf) => None,
            _ => Some(self.fail(Fail(
                StatusCode::FORBIDDEN,
                self.lang
                    .t(
                        "表单已失效（缺少或错误的 CSRF 令牌），请重新打开页面。",
                        "The form is not valid (missing or wrong CSRF token); open the page again.",
                    )
                    .into(),
            ))),
        }
    }
}

async fn root() -> Response {
    redirect("/console/incidents")
}

async fn css() -> Response {
    static_file(
        "text/css; charset=utf-8",
        include_str!("../../static/console.css"),
    )
}

async fn favicon() -> Response {
    static_file("image/svg+xml", include_str!("../../static/favicon.svg"))
}

async fn js() -> Response {
    static_file(
        "text/javascript; charset=utf-8",
        include_str!("../../static/console.js"),
    )
}

fn static_file(ct: &'static str, body: &'static str) -> Response {
    let mut r = ([(header::CONTENT_TYPE, HeaderValue::from_static(ct))], body).into_response();
    secure_headers(&mut r);
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=300"),
    );
    r
}

fn login_page(
    st: &Shared,
    lang: Lang,
    parts_here: &str,
    csrf: &str,
    error: Option<&str>,
) -> String {
    let err = error.map_or(String::new(), |e| {
        format!(r#"<p class="error" role="alert">{}</p>"#, esc(e))
    });
    let _ = st;
    page::frame(
        lang,
        lang.t("登录", "Sign in"),
        None,
        parts_here,
        "",
        &format!(
            r#"<h1>{}</h1>{err}<form method="post" action="/console/login" class="act"><input type="hidden" name="csrf" value="{}"><label for="token">{}</label><input id="token" name="token" type="password" autocomplete="current-password" required size="48"><p class="muted">{}</p><button type="submit">{}</button></form>"#,
            lang.t("登录控制台", "Sign in to the console"),
            page::attr(csrf),
            lang.t("API 令牌", "API token"),
            lang.t(
                "令牌只在登录时使用一次；之后由会话 Cookie 代替（8 小时）。",
                "The token is used once, to sign in; a session cookie (8 hours) stands in for it afterwards."
            ),
            lang.t("登录", "Sign in"),
        ),
    )
}

async fn login_form(State(st): State<Arc<Shared>>, parts: Parts) -> Response {
    let (lang, set_lang) = lang_of(&parts);
    let c = cookies(&parts.headers);
    if let Some(sid) = c.get(SESSION_COOKIE) {
        if st.sessions.get(sid, st.clock.now_ms()).is_some() {
            return redirect("/console/incidents");
        }
    }
    let csrf = c
        .get(LOGIN_COOKIE)
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
        .cloned()
        .unwrap_or_else(random_hex);
    let mut r = html(
        StatusCode::OK,
        login_page(&st, lang, &path_without_lang(&parts), &csrf, None),
    );
    add_cookie(&mut r, &cookie(&st, LOGIN_COOKIE, &csrf, 3600, true));
    if let Some(l) = set_lang {
        add_cookie(&mut r, &lang_cookie(&st, l));
    }
    r
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    #[serde(default)]
    token: String,
    csrf: Option<String>,
}

async fn login(
    State(st): State<Arc<Shared>>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let c = cookies(&headers);
    let lang = c
        .get(LANG_COOKIE)
        .and_then(|v| Lang::parse(v))
        .unwrap_or(Lang::Zh);
    let bound = c.get(LOGIN_COOKIE);
    let csrf_ok =
        matches!((bound, f.csrf.as_deref()), (Some(b), Some(g)) if b.len() == 64 && ct_eq(b, g));
    if !csrf_ok {
        let fresh = random_hex();
        let mut r = html(
            StatusCode::FORBIDDEN,
            login_page(
                &st,
                lang,
                "/console/login",
                &fresh,
                Some(lang.t(
                    "登录表单已失效（CSRF 令牌不符），请重试。",
                    "The sign-in form is not valid (CSRF token mismatch); try again.",
                )),
            ),
        );
        add_cookie(&mut r, &cookie(&st, LOGIN_COOKIE, &fresh, 3600, true));
        return r;
    }
    let Some(token) = token_of(&st.config, &f.token) else {
        let mut r = html(
            StatusCode::UNAUTHORIZED,
            login_page(
                &st,
                lang,
                "/console/login",
                bound.map_or("", String::as_str),
                Some(lang.t("令牌无效。", "Unknown token.")),
            ),
        );
        secure_headers(&mut r);
        return r;
    };
    let Some((sid, _)) = st.sessions.create(&token.sha256, st.clock.now_ms()) else {
        return html(
            StatusCode::SERVICE_UNAVAILABLE,
            login_page(
                &st,
                lang,
                "/console/login",
                bound.map_or("", String::as_str),
                Some(lang.t(
                    "会话已满，请稍后再试。",
                    "Too many sessions; try again later.",
                )),
            ),
        );
    };
    let mut r = redirect("/console/incidents");
    add_cookie(
        &mut r,
        &cookie(&st, SESSION_COOKIE, &sid, SESSION_MS / 1000, true),
    );
    add_cookie(&mut r, &cookie(&st, LOGIN_COOKIE, "", 0, true));
    r
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    csrf: Option<String>,
}

async fn logout(ctx: Ctx, Form(f): Form<CsrfForm>) -> Response {
    if let Some(r) = ctx.check_csrf(f.csrf.as_deref()) {
        return r;
    }
    ctx.shared.sessions.remove(&ctx.sid);
    let mut r = redirect("/console/login");
    add_cookie(&mut r, &cookie(&ctx.shared, SESSION_COOKIE, "", 0, true));
    r
}

/// `/console/incidents` parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<String>,
    grade: Option<String>,
    enterprise: Option<String>,
    gateway: Option<String>,
    kind: Option<String>,
    page: Option<u32>,
    #[allow(dead_code)]
    lang: Option<String>,
}

fn nonempty(v: &Option<String>) -> Option<String> {
    v.clone().filter(|s| !s.is_empty())
}

async fn list(
    ctx: Ctx,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return ctx.fail(Fail(StatusCode::BAD_REQUEST, e.body_text())),
    };
    if let Some(s) = nonempty(&q.status) {
        if !STATUSES.contains(&s.as_str()) {
            return ctx.fail(Fail(StatusCode::BAD_REQUEST, format!("status={s:?}")));
        }
    }
    let kind = nonempty(&q.kind);
    if let Some(k) = &kind {
        if !crate::incident::known_kind(k) {
            return ctx.fail(Fail(StatusCode::BAD_REQUEST, format!("kind={k:?}")));
        }
    }
    let page_no = q.page.unwrap_or(0).min(1_000_000);
    let f = IncidentFilter {
        status: nonempty(&q.status),
        grade: nonempty(&q.grade),
        enterprise: nonempty(&q.enterprise),
        gateway: nonempty(&q.gateway),
        limit: PAGE + 1,
        offset: page_no.saturating_mul(PAGE),
    };
    let scope = ctx.scope();
    let newest_f = IncidentFilter {
        limit: 1,
        ..IncidentFilter::default()
    };
    let r = ctx
        .shared
        .blocking(move |s| {
            let items: Vec<serde_json::Value> = s
                .incidents_by_deadline(&scope, &f, kind.as_deref())?
                .iter()
                .map(shape::incident)
                .collect();
            let newest = s.incidents(&scope, &newest_f)?;
            Ok((items, newest))
        })
        .await;
    match r {
        Ok((items, newest)) => {
            let newest = newest.first().map_or(0, |i| i.id);
            let content = views::incident_list(
                ctx.lang,
                &ctx.token,
                &q,
                page_no,
                PAGE,
                &items,
                ctx.shared.clock.now_ms(),
            );
            ctx.page(
                StatusCode::OK,
                ctx.lang.t("事件", "Incidents"),
                &format!(r#" data-poll="1" data-newest="{newest}""#),
                &content,
            )
        }
        Err(e) => ctx.fail(e),
    }
}

async fn poll(ctx: Ctx) -> Response {
    let scope = ctx.scope();
    let f = IncidentFilter {
        limit: 1,
        ..IncidentFilter::default()
    };
    match ctx.shared.blocking(move |s| s.incidents(&scope, &f)).await {
        Ok(v) => {
            let newest = v.first().map_or(0, |i| i.id);
            let mut r = (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                format!("{{\"newest\":{newest}}}"),
            )
                .into_response();
            secure_headers(&mut r);
            r
        }
        Err(e) => e.into_response(),
    }
}

async fn detail(ctx: Ctx, Path(id): Path<String>) -> Response {
    let id = match crate::api::id_of(&id) {
        Ok(i) => i,
        Err(e) => return ctx.fail(e),
    };
    let inc = match incident_view(&ctx.shared, ctx.scope(), id, false).await {
        Ok(v) => v,
        Err(e) => return ctx.fail(e),
    };
    let ids: Vec<i64> = inc["report"]["alert_ids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(serde_json::Value::as_i64)
                .take(200)
                .collect()
        })
        .unwrap_or_default();
    let scope = ctx.scope();
    let alerts = ctx
        .shared
        .blocking(move |s| {
            let mut out = Vec::with_capacity(ids.len());
            for i in ids {
                if let Some(a) = s.alert(&scope, i)? {
                    out.push(shape::alert(&a));
                }
            }
            Ok(out)
        })
        .await;
    let mut alerts = match alerts {
        Ok(a) => a,
        Err(e) => return ctx.fail(e),
    };
    alerts.sort_by(|a, b| {
        a["timestamp"]
            .as_str()
            .cmp(&b["timestamp"].as_str())
            .then(a["id"].as_i64().cmp(&b["id"].as_i64()))
    });
    let content = views::incident_detail(
        ctx.lang,
        &ctx.token,
        &ctx.csrf,
        &inc,
        &alerts,
        ctx.shared.clock.now_ms(),
    );
    ctx.page(
        StatusCode::OK,
        &format!("{} #{id}", ctx.lang.t("事件", "Incident")),
        "",
        &content,
    )
}

#[derive(Debug, Deserialize)]
struct ActForm {
    csrf: Option<String>,
    #[serde(default)]
    cause: String,
    #[serde(default)]
    measures: String,
}

async fn do_act(ctx: Ctx, id: String, action: Transition, f: ActForm) -> Response {
    if let Some(r) = ctx.check_csrf(f.csrf.as_deref()) {
        return r;
    }
    let id = match crate::api::id_of(&id) {
        Ok(i) => i,
        Err(e) => return ctx.fail(e),
    };
    let comment = views::comment_of(&f.cause, &f.measures);
    match act(&ctx.shared, &ctx.token, id, action, comment).await {
        Ok(_) => redirect(&format!("/console/incidents/{id}")),
        Err(e) => ctx.fail(e),
    }
}

async fn acknowledge(ctx: Ctx, Path(id): Path<String>, Form(f): Form<ActForm>) -> Response {
    do_act(ctx, id, Transition::Acknowledge, f).await
}

async fn resolve(ctx: Ctx, Path(id): Path<String>, Form(f): Form<ActForm>) -> Response {
    do_act(ctx, id, Transition::Resolve, f).await
}

async fn report(ctx: Ctx, Path(id): Path<String>) -> Response {
    let id = match crate::api::id_of(&id) {
        Ok(i) => i,
        Err(e) => return ctx.fail(e),
    };
    match incident_view(&ctx.shared, ctx.scope(), id, true).await {
        Ok(inc) => {
            let content = views::report(ctx.lang, &inc);
            ctx.page(
                StatusCode::OK,
                &format!("{} #{id}", ctx.lang.t("事件报告", "Incident report")),
                "",
                &content,
            )
        }
        Err(e) => ctx.fail(e),
    }
}

async fn gateways(ctx: Ctx) -> Response {
    let view = match ctx.token.role {
        Role::Regulator => crate::metrics::View::Full,
        Role::Operator => crate::metrics::View::Gateways(ctx.token.gateways.clone()),
        Role::Enterprise => return ctx.fail(Fail::not_found()),
    };
    let text = ctx.shared.metrics.render(&view);
    let list: Vec<String> = match ctx.token.role {
        Role::Regulator => ctx.shared.config.gateways.clone(),
        _ => ctx
            .shared
            .config
            .gateways
            .iter()
            .filter(|g| ctx.token.gateways.contains(g))
            .cloned()
            .collect(),
    };
    let content = views::gateways(
        ctx.lang,
        &ctx.shared.config,
        &list,
        &text,
        ctx.shared.clock.now_ms(),
    );
    ctx.page(StatusCode::OK, ctx.lang.t("网关", "Gateways"), "", &content)
}

async fn enterprises(ctx: Ctx) -> Response {
    let ids: Vec<String> = match (&ctx.token.role, &ctx.shared.config.registry) {
        (Role::Operator, _) => return ctx.fail(Fail::not_found()),
        (Role::Enterprise, _) => ctx.token.enterprise.iter().cloned().collect(),
        (Role::Regulator, Some(r)) => r.enterprises.iter().map(|e| e.id.clone()).collect(),
        (Role::Regulator, None) => Vec::new(),
    };
    let scope = ctx.scope();
    let ids2 = ids.clone();
    let sums = ctx
        .shared
        .blocking(move |s| {
            ids2.iter()
                .map(|id| s.enterprise_summary(&scope, id).map(|e| shape::summary(&e)))
                .collect::<Result<Vec<_>, _>>()
        })
        .await;
    match sums {
        Ok(sums) => {
            let content = views::enterprises(
                ctx.lang,
                &ctx.shared.config,
                ctx.shared.registry.as_ref(),
                &ids,
                &sums,
                ctx.shared.clock.today_beijing(),
            );
            ctx.page(
                StatusCode::OK,
                ctx.lang.t("企业与备案", "Enterprises and filings"),
                "",
                &content,
            )
        }
        Err(e) => ctx.fail(e),
    }
}

/// The console routes (merged into the API router).
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/console", get(root))
        .route("/console/", get(root))
        .route("/console/static/console.css", get(css))
        .route("/console/static/console.js", get(js))
        .route("/console/static/favicon.svg", get(favicon))
        .route("/console/login", get(login_form).post(login))
        .route("/console/logout", post(logout))
        .route("/console/poll", get(poll))
        .route("/console/incidents", get(list))
        .route("/console/incidents/{id}", get(detail))
        .route("/console/incidents/{id}/acknowledge", post(acknowledge))
        .route("/console/incidents/{id}/resolve", post(resolve))
        .route("/console/incidents/{id}/report", get(report))
        .route("/console/gateways", get(gateways))
        .route("/console/enterprises", get(enterprises))
}
