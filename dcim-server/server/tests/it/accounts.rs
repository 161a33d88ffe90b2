//! Accounts: password rules, changing a password, disabling a user, token expiry and
//! revocation, by API and CLI; the generated bootstrap password never reaches the log.

use crate::common;
use common::*;
use reqwest::StatusCode;
use std::process::Command;
use std::time::Duration;

async fn post(
    client: &reqwest::Client,
    url: &str,
    auth: (&str, &str),
    body: serde_json::Value,
) -> (StatusCode, serde_json::Value) {
    let mut r = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string());
    r = match auth {
        ("bearer", t) => r.bearer_auth(t),
        ("cookie", c) => r
            .header("cookie", c.split('|').next().unwrap())
            .header("x-csrf-token", c.split('|').nth(1).unwrap_or_default()),
        _ => r,
    };
    let resp = r.send().await.unwrap();
    let st = resp.status();
    let v = serde_json::from_str(&resp.text().await.unwrap()).unwrap_or_default();
    (st, v)
}

/// Signs in; `"cookie|csrf"` on success.
async fn sign_in(
    client: &reqwest::Client,
    base: &str,
    user: &str,
    pw: &str,
) -> Result<String, StatusCode> {
    let r = login_response(client, base, user, pw).await;
    if r.status() != StatusCode::OK {
        return Err(r.status());
    }
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("dcim_session="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let v: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    Ok(format!("{cookie}|{}", v["csrf_token"].as_str().unwrap()))
}

async fn me(client: &reqwest::Client, base: &str, auth: (&str, &str)) -> StatusCode {
    let r = client.get(format!("{base}/api/me"));
    let r = match auth {
        ("bearer", t) => r.bearer_auth(t),
        (_, c) => r.header("cookie", c.split('|').next().unwrap()),
    };
    r.send().await.unwrap().status()
}

/// Hazard: there was no way to change a password, disable a user or revoke or expire a
/// token, and a password of six "é", twelve spaces or 1 MB was accepted.
#[tokio::test]
async fn passwords_users_and_tokens_can_be_changed_disabled_revoked_and_expire() {
    let dir = tempfile::tempdir().unwrap();
    let (server, client, tokens) = started_with_users(config(dir.path())).await;
    let admin = tokens[2].1.clone();
    let base = format!("http://{}", server.http_addr);
    let u = |p: &str| format!("{base}{p}");

    // Password rules at creation.
    for bad in [
        "éééééé".to_string(),
        " ".repeat(12),
        "\0".repeat(12),
        "x".repeat(300),
    ] {
        let (st, v) = post(
            &client,
            &u("/api/users"),
            ("bearer", &admin),
            serde_json::json!({"name": "u2", "role": "operator", "password": bad}),
        )
        .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    }
    let (st, _) = post(
        &client,
        &u("/api/users"),
        ("bearer", &admin),
        serde_json::json!({"name": "u2", "role": "operator", "password": "première clé sûre"}),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED);

    // u2 changes its own password: the current one must be right; its other sessions end.
    let s1 = sign_in(&client, &base, "u2", "première clé sûre")
        .await
        .unwrap();
    let s2 = sign_in(&client, &base, "u2", "première clé sûre")
        .await
        .unwrap();
    let (st, _) = post(
        &client,
        &u("/api/me/password"),
        ("cookie", &s1),
        serde_json::json!({"current": "wrong one here", "new": "deuxième clé sûre"}),
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, v) = post(
        &client,
        &u("/api/me/password"),
        ("cookie", &s1),
        serde_json::json!({"current": "première clé sûre", "new": "deuxième clé sûre"}),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["sessions_ended"], 1);
    assert_eq!(me(&client, &base, ("cookie", &s1)).await, StatusCode::OK);
    assert_eq!(
        me(&client, &base, ("cookie", &s2)).await,
        StatusCode::UNAUTHORIZED
    );
    assert!(
        sign_in(&client, &base, "u2", "première clé sûre")
            .await
            .is_err()
    );
    let s3 = sign_in(&client, &base, "u2", "deuxième clé sûre")
        .await
        .unwrap();

    // A token for u2, and a live stream on it.
    let (st, t) = post(
        &client,
        &u("/api/users/u2/tokens"),
        ("bearer", &admin),
        serde_json::json!({"name": "script", "days": 1}),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED);
    let token = t["token"].as_str().unwrap().to_string();
    let id = t["id"].as_str().unwrap().to_string();
    let expires = t["expires_ms"].as_i64().unwrap();
    assert!((expires - dcim_clock::now_ms() - 86_400_000).abs() < 60_000);
    let listed = get_json(&client, &u("/api/users/u2/tokens"), &admin).await;
    assert_eq!(listed["tokens"][0]["id"], id);
    assert!(
        !listed.to_string().contains(&token),
        "the token is never listed"
    );
    assert_eq!(me(&client, &base, ("bearer", &token)).await, StatusCode::OK);
    let stream = client
        .get(u("/api/stream?heartbeat_ms=500"))
        .bearer_auth(&token)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);

    // Disabling: not oneself, then u2: its sessions, tokens and stream end.
    let (st, _) = post(
        &client,
        &u("/api/users/u-admin/disable"),
        ("bearer", &admin),
        serde_json::json!({}),
    )
    .await;
    assert_eq!(st, StatusCode::CONFLICT, "an admin disabling itself");
    let (st, v) = post(
        &client,
        &u("/api/users/u2/disable"),
        ("bearer", &admin),
        serde_json::json!({}),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        me(&client, &base, ("cookie", &s3)).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        me(&client, &base, ("bearer", &token)).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        sign_in(&client, &base, "u2", "deuxième clé sûre").await,
        Err(StatusCode::UNAUTHORIZED)
    );
    let mut body = stream;
    let ended = tokio::time::timeout(Duration::from_secs(12), async {
        while let Ok(Some(_)) = body.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the live stream of a disabled user went on");
    let (st, _) = post(
        &client,
        &u("/api/users/u2/enable"),
        ("bearer", &admin),
        serde_json::json!({}),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        sign_in(&client, &base, "u2", "deuxième clé sûre")
            .await
            .is_ok()
    );

    // Revocation, and expiry.
    let (st, _) = post(
        &client,
        &u(&format!("/api/users/u2/tokens/{id}/revoke")),
        ("bearer", &admin),
        serde_json::json!({}),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        me(&client, &base, ("bearer", &token)).await,
        StatusCode::UNAUTHORIZED
    );
    let old = dcim_server::state::auth::new_token("dcim_");
    server
        .app
        .store
        .create_token_until(
            &dcim_server::state::auth::token_hash(&old),
            "u2",
            "old",
            0,
            Some(dcim_clock::now_ms() - 1),
        )
        .await
        .unwrap();
    assert_eq!(
        me(&client, &base, ("bearer", &old)).await,
        StatusCode::UNAUTHORIZED,
        "an expired token"
    );

    // An admin sets a password; under authority control, disabling is refused (423).
    let (st, _) = post(
        &client,
        &u("/api/users/u2/password"),
        ("bearer", &admin),
        serde_json::json!({"password": "troisième clé sûre"}),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        sign_in(&client, &base, "u2", "troisième clé sûre")
            .await
            .is_ok()
    );
    let (st, _) = post(
        &client,
        &u("/api/authority/enter"),
        ("bearer", &admin),
        serde_json::json!({"reason": "fire brigade on site"}),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = post(
        &client,
        &u("/api/users/u2/disable"),
        ("bearer", &admin),
        serde_json::json!({}),
    )
    .await;
    assert_eq!(st, StatusCode::LOCKED);
    let audit = get_json(&client, &u("/api/audit?limit=1000"), &admin).await;
    let actions = audit_action_names(&audit);
    for a in [
        "user.password",
        "user.disable",
        "user.enable",
        "token.create",
        "token.revoke",
        "authority.refused",
    ] {
        assert!(actions.contains(&a), "{a} not audited: {actions:?}");
    }
    server.shutdown().await;
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_dcim-server")
}

/// Hazard: the generated bootstrap admin password was written to the log (kept, shipped and
/// read by many), the data directory was 0755 and the database 0644.
#[tokio::test]
async fn the_bootstrap_password_is_never_logged_and_the_data_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (hport, mqtt) = (free_port(), free_port());
    let cfg = write_config(dir.path(), hport, mqtt);
    let log = dir.path().join("server.log");
    let mut child = Command::new(bin())
        .arg("--config")
        .arg(&cfg)
        .env_remove("DCIM_ADMIN_PASSWORD")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let client = http();
    let base = format!("http://127.0.0.1:{hport}");
    eventually("server up", || async {
        client.get(format!("{base}/health")).send().await.is_ok()
    })
    .await;
    let data = dir.path().join("data");
    let file = data.join(dcim_server::INITIAL_PASSWORD_FILE);
    let pw = std::fs::read_to_string(&file).unwrap().trim().to_string();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&dcim_server::storage::store::db_path(&data)), 0o600);
    assert!(sign_in(&client, &base, "admin", &pw).await.is_ok());
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(&pw), "the password is in the log:\n{text}");
    assert!(text.contains(dcim_server::INITIAL_PASSWORD_FILE), "{text}");

    // The CLI: a password, disabling, tokens listed and revoked.
    let run = |args: &[&str], pw: Option<&str>| {
        let mut c = Command::new(bin());
        c.args(args).arg("--config").arg(&cfg);
        if let Some(p) = pw {
            c.env("DCIM_NEW_PASSWORD", p);
        }
        c.output().unwrap()
    };
    let out = run(&["user", "passwd", "--name", "admin"], Some("       "));
    assert!(!out.status.success(), "a password of spaces");
    let out = run(
        &["user", "passwd", "--name", "admin"],
        Some("a new admin password"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(
        &[
            "user", "token", "--name", "admin", "--label", "x", "--days", "2",
        ],
        None,
    );
    assert!(out.status.success());
    let out = run(&["user", "tokens", "--name", "admin"], None);
    let listing = String::from_utf8(out.stdout).unwrap();
    let id = listing.split_whitespace().next().unwrap().to_string();
    assert!(listing.contains("expires at"), "{listing}");
    let out = run(&["user", "revoke", "--name", "admin", "--token", &id], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["user", "tokens", "--name", "admin"], None);
    assert!(String::from_utf8(out.stdout).unwrap().trim().is_empty());
    let out = run(&["user", "disable", "--name", "admin"], None);
    assert!(out.status.success());
}
