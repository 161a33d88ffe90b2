//! HTTP API: authentication matrix, session expiry, CSRF, OpenAPI.

use crate::common;
use common::*;
use dcim_server::config::Role;
use dcim_server::http::api::ROUTES;
use dcim_server::state::auth::{Access, allows};
use reqwest::StatusCode;
use std::time::Duration;

fn concrete(path: &str) -> String {
    // Disabling the viewer would end its token for the rest of the matrix.
    let user = if path.ends_with("/disable") {
        "nobody"
    } else {
        "u-viewer"
    };
    path.replace("{device}", "ups-1")
        .replace("{point}", "load")
        .replace("{name}", user)
}

async fn call(
    client: &reqwest::Client,
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> StatusCode {
    let url = format!("{base}{}", concrete(path));
    let mut req = match method {
        "GET" => client.get(&url),
        "POST" => client
            .post(&url)
            .header("content-type", "application/json")
            .body("{}"),
        other => panic!("method {other}"),
    };
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    resp.status()
}

#[tokio::test]
async fn every_route_but_health_refuses_without_credentials_or_with_a_weak_role() {
    let dir = tempfile::tempdir().unwrap();
    let (server, client, tokens) = started_with_users(config(dir.path())).await;
    let base = format!("http://{}", server.http_addr);
    let mut checked = 0;
    for rt in ROUTES {
        if rt.path == "/api/stream" {
            continue; // checked below: a successful response never ends
        }
        let anon = call(&client, &base, rt.method, rt.path, None).await;
        match rt.access {
            None if rt.path == "/health" => assert_eq!(anon, StatusCode::OK),
            None => assert_eq!(
                anon,
                StatusCode::BAD_REQUEST,
                "{} {}: login with an empty body",
                rt.method,
                rt.path
            ),
            Some(_) => assert_eq!(
                anon,
                StatusCode::UNAUTHORIZED,
                "{} {} without credentials",
                rt.method,
                rt.path
            ),
        }
        if let Some(access) = rt.access {
            let bad = call(&client, &base, rt.method, rt.path, Some("dcim_not-a-token")).await;
            assert_eq!(
                bad,
                StatusCode::UNAUTHORIZED,
                "{} {} with a forged token",
                rt.method,
                rt.path
            );
            for (role, token) in &tokens {
                let st = call(&client, &base, rt.method, rt.path, Some(token)).await;
                if allows(*role, access) {
                    assert!(
                        st != StatusCode::UNAUTHORIZED && st != StatusCode::FORBIDDEN,
                        "{} {} as {role:?}: {st}",
                        rt.method,
                        rt.path
                    );
                } else {
                    assert_eq!(
                        st,
                        StatusCode::FORBIDDEN,
                        "{} {} as {role:?}",
                        rt.method,
                        rt.path
                    );
                }
                // Taking command (entering authority control) is the fire authority's only
                // write.
                if *role == Role::FireAuthority
                    && rt.method != "GET"
                    && !matches!(
                        rt.path,
                        "/api/logout" | "/api/authority/enter" | "/api/me/password"
                    )
                {
                    assert_eq!(
                        st,
                        StatusCode::FORBIDDEN,
                        "fire authority must not change anything: {}",
                        rt.path
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 4 * 25, "checked {checked}");
    // The live stream: refused without credentials, opens with any role.
    assert_eq!(
        call(&client, &base, "GET", "/api/stream", None).await,
        StatusCode::UNAUTHORIZED
    );
    let r = client
        .get(format!("{base}/api/stream"))
        .bearer_auth(&tokens[3].1)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    drop(r);
    // Every route with a write is Operate or Admin, except logout, changing one's own
    // password (account self-service, nothing in the plant) and entering authority control
    // (which the fire authority may do, and which is refused to viewers).
    for rt in ROUTES.iter().filter(|r| r.method != "GET") {
        assert!(
            matches!(rt.path, "/api/login" | "/api/logout" | "/api/me/password")
                || (rt.path == "/api/authority/enter" && rt.access == Some(Access::TakeCommand))
                || matches!(rt.access, Some(Access::Operate | Access::Admin)),
            "{} is a write open to readers",
            rt.path
        );
    }
    server.shutdown().await;
}

async fn login(client: &reqwest::Client, base: &str, user: &str) -> (String, String) {
    let r = login_response(client, base, user, PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
    let cookies: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let session = cookies
        .iter()
        .find(|c| c.starts_with("dcim_session="))
        .unwrap();
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Strict"),
        "{session}"
    );
    let body: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    let cookie = cookies
        .iter()
        .map(|c| c.split(';').next().unwrap())
        .collect::<Vec<_>>()
        .join("; ");
    (cookie, body["csrf_token"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn sessions_expire_and_wrong_passwords_are_refused_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.http.session_ttl_s = 1;
    let (server, client, tokens) = started_with_users(cfg).await;
    let base = format!("http://{}", server.http_addr);
    let (cookie, _) = login(&client, &base, "u-viewer").await;
    let me = |c: String| {
        let client = client.clone();
        let base = base.clone();
        async move {
            client
                .get(format!("{base}/api/me"))
                .header("cookie", c)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(me(cookie.clone()).await, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        me(cookie).await,
        StatusCode::UNAUTHORIZED,
        "expired session"
    );
    let r = client
        .post(format!("{base}/api/login"))
        .body(serde_json::json!({"username": "u-viewer", "password": "nope"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let admin = &tokens[2].1;
    let audit = get_json(&client, &format!("{base}/api/audit"), admin).await;
    let actions = audit_action_names(&audit);
    assert!(
        actions.contains(&"login") && actions.contains(&"login.failed"),
        "{actions:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn cookie_writes_need_the_csrf_token_and_a_same_origin() {
    let dir = tempfile::tempdir().unwrap();
    let server = dcim_server::start(config(dir.path())).await.unwrap();
    users_with_tokens(&server).await;
    let client = http();
    let base = format!("http://{}", server.http_addr);
    let (cookie, csrf) = login(&client, &base, "u-admin").await;
    let create = |name: &str, csrf: Option<&str>, origin: Option<&str>| {
        let mut r = client
            .post(format!("{base}/api/users"))
            .header("cookie", &cookie)
            .body(
                serde_json::json!({"name": name, "role": "viewer", "password": PASSWORD})
                    .to_string(),
            );
        if let Some(c) = csrf {
            r = r.header("x-csrf-token", c);
        }
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        r.send()
    };
    assert_eq!(
        create("n1", None, None).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        create("n1", Some("wrong"), None).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        create("n1", Some(&csrf), Some("http://evil.example"))
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    let same_origin = format!("http://{}", server.http_addr);
    assert_eq!(
        create("n1", Some(&csrf), Some(&same_origin))
            .await
            .unwrap()
            .status(),
        StatusCode::CREATED
    );
    assert_eq!(
        create("n1", Some(&csrf), None).await.unwrap().status(),
        StatusCode::CONFLICT
    );
    // GETs with the cookie need no token.
    let r = client
        .get(format!("{base}/api/users"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Logout ends the session.
    let r = client
        .post(format!("{base}/api/logout"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = client
        .get(format!("{base}/api/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    server.shutdown().await;
}

#[tokio::test]
async fn openapi_lists_every_route() {
    let doc = dcim_server::http::api::openapi_doc();
    assert_eq!(doc["openapi"], "3.0.3");
    for rt in ROUTES {
        assert!(
            doc["paths"][rt.path][rt.method.to_lowercase()].is_object(),
            "{} {}",
            rt.method,
            rt.path
        );
    }
}

#[tokio::test]
async fn a_quiet_stream_sends_heartbeats_so_a_client_can_tell_it_from_a_dead_one() {
    // Hazard: a console that cannot tell "nothing happened" from "the server is gone" keeps
    // showing the last values as live (the lost-data banner needs a beat to miss).
    let dir = tempfile::tempdir().unwrap();
    let (server, client, tokens) = started_with_users(config(dir.path())).await;
    let base = format!("http://{}", server.http_addr);
    let viewer = &tokens[0].1;
    let bad = client
        .get(format!("{base}/api/stream?heartbeat_ms=10"))
        .bearer_auth(viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    // Only authority events, of which there are none: the heartbeats are all that arrive,
    // filtered-out events do not delay them.
    let mut r = client
        .get(format!(
            "{base}/api/stream?heartbeat_ms=500&events=authority"
        ))
        .bearer_auth(viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let t0 = std::time::Instant::now();
    let mut beats = Vec::new();
    while beats.len() < 3 {
        let chunk = tokio::time::timeout(Duration::from_secs(2), r.chunk())
            .await
            .expect("a heartbeat within 2 s")
            .unwrap()
            .unwrap();
        let text = String::from_utf8_lossy(&chunk);
        for block in text
            .split("\n\n")
            .filter(|b| b.contains("event: heartbeat"))
        {
            let ms: i64 = block
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .expect("heartbeat data")
                .parse()
                .expect("the server time in ms");
            assert!((ms - dcim_clock::now_ms()).abs() < 5_000, "{block}");
            beats.push(t0.elapsed());
        }
    }
    assert!(
        beats[2] < Duration::from_millis(2_500),
        "three heartbeats of 500 ms took {:?}",
        beats[2]
    );
    drop(r);
    // Without the parameter the stream is as before: no heartbeat events.
    let mut plain = client
        .get(format!("{base}/api/stream?events=authority"))
        .bearer_auth(viewer)
        .send()
        .await
        .unwrap();
    let nothing = tokio::time::timeout(Duration::from_millis(1200), plain.chunk()).await;
    assert!(
        nothing.is_err()
            || !String::from_utf8_lossy(&nothing.unwrap().unwrap().unwrap_or_default())
                .contains("heartbeat"),
        "a heartbeat without heartbeat_ms"
    );
    drop(plain);
    server.shutdown().await;
}

/// Hazard: an essential task dies (here the ticker that runs the alarm engine's timers and the
/// redundancy re-evaluation) and the server stays up looking alive: `/health` green, no alarm
/// ever escalated. The server must say which task is gone and stop with a failure status.
#[tokio::test]
async fn a_dead_essential_task_fails_health_and_stops_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = dcim_server::start(config(dir.path())).await.unwrap();
    let url = format!("http://{}/health", server.http_addr);
    assert_eq!(http().get(&url).send().await.unwrap().status(), 200);
    assert!(
        server.app.health.abort("ticker"),
        "the ticker is supervised"
    );
    let notifier = dcim_service::Notifier::from_env();
    let ended = tokio::time::timeout(
        Duration::from_secs(5),
        server.run_until(std::future::pending(), &notifier),
    )
    .await
    .expect("the server notices the dead task within seconds");
    assert_eq!(ended, Some(vec!["ticker".to_string()]));
    let resp = http().get(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert!(
        body["checks"]["tasks"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("ticker")),
        "/health names the task: {body}"
    );
    server.shutdown().await;
}
