//! Chat and paging formats end to end: a grade-2 alarm raised by telemetry over MQTT is sent
//! by the server's notifier to five webhook channels (`format` slack, teams, kakaowork,
//! pagerduty, custom), each a local HTTP receiver that checks what the real service checks
//! before it accepts a message (method, content type, the body's required fields and limits)
//! and answers the way the service answers (Slack `200 ok`, Teams `202`, KakaoWork
//! `200 {"success":true}`, PagerDuty `202 {"status":"success"}`), or refuses the way it refuses
//! (`400`).
//!
//! Hazards: a body the service refuses is a notification nobody gets (Slack answers
//! `invalid_payload`, PagerDuty `Event object is invalid`), and the operator finds out during the
//! fire; a body the service accepts but that says nothing about the alarm (no alarm id, no
//! grade, a fixed title); a 202 read as a failure, so the fallback channel is spammed and the
//! breaker opens on a healthy service.

use crate::common;
use common::*;
use serde_json::{Value as Json, json};
use std::time::Duration;
use tokio::sync::mpsc;

/// A 32-character PagerDuty integration key (the Events API v2 format).
const ROUTING_KEY: &str = "R0UT1NGKEY0123456789abcdef012345";
const SECRET: &str = "custom-secret";

/// One request a receiver took: `(service, content type, user agent, signature, body)`.
#[derive(Debug)]
struct Received {
    service: &'static str,
    content_type: String,
    user_agent: String,
    signature: Option<String>,
    body: Json,
    raw: Vec<u8>,
}

fn text_len(v: &Json) -> usize {
    v.as_str().map(|s| s.chars().count()).unwrap_or(0)
}

/// Slack incoming webhook: `text` or `blocks` required; header text plain_text (at most 150
/// characters); section text at most 3000; context at most 10 elements.
fn slack_refusal(b: &Json) -> Option<String> {
    let text = b["text"].as_str().unwrap_or("");
    let blocks = b["blocks"].as_array();
    if text.is_empty() && blocks.is_none_or(|b| b.is_empty()) {
        return Some("no_text".into());
    }
    for block in blocks.into_iter().flatten() {
        let ok = match block["type"].as_str() {
            Some("header") => {
                block["text"]["type"] == "plain_text"
                    && (1..=150).contains(&text_len(&block["text"]["text"]))
            }
            Some("section") => {
                matches!(
                    block["text"]["type"].as_str(),
                    Some("mrkdwn" | "plain_text")
                ) && (1..=3000).contains(&text_len(&block["text"]["text"]))
            }
            Some("context") => block["elements"].as_array().is_some_and(|e| {
                !e.is_empty() && e.len() <= 10 && e.iter().all(|x| x["text"].is_string())
            }),
            Some("divider") => true,
            _ => false,
        };
        if !ok {
            return Some(format!("invalid_blocks: {block}"));
        }
    }
    None
}

/// Teams workflow webhook ("Post to a channel when a webhook request is received"): a message
/// whose attachments are Adaptive Cards, each with a type, a version and a body.
fn teams_refusal(b: &Json) -> Option<String> {
    if b["type"] != "message" {
        return Some("type must be message".into());
    }
    let atts = b["attachments"].as_array()?;
    if atts.is_empty() {
        return Some("no attachments".into());
    }
    for a in atts {
        let c = &a["content"];
        if a["contentType"] != "application/vnd.microsoft.card.adaptive"
            || c["type"] != "AdaptiveCard"
            || !c["version"].as_str().is_some_and(|v| v.starts_with("1."))
            || c["body"].as_array().is_none_or(|b| b.is_empty())
        {
            return Some(format!("not an adaptive card: {a}"));
        }
        for el in c["body"].as_array().unwrap() {
            match el["type"].as_str() {
                Some("TextBlock") if el["text"].is_string() => {}
                Some("FactSet")
                    if el["facts"].as_array().is_some_and(|f| {
                        f.iter()
                            .all(|f| f["title"].is_string() && f["value"].is_string())
                    }) => {}
                _ => return Some(format!("unknown card element {el}")),
            }
        }
    }
    None
}

/// KakaoWork incoming webhook: `text` (the push preview) required; blocks of known types;
/// header text at most 20 characters with style blue, red or yellow; text blocks at most 500.
fn kakaowork_refusal(b: &Json) -> Option<String> {
    if text_len(&b["text"]) == 0 {
        return Some("text is required".into());
    }
    for block in b["blocks"].as_array().into_iter().flatten() {
        let ok = match block["type"].as_str() {
            Some("header") => {
                (1..=20).contains(&text_len(&block["text"]))
                    && matches!(block["style"].as_str(), Some("blue" | "red" | "yellow"))
            }
            Some("text") => (1..=500).contains(&text_len(&block["text"])),
            Some("divider") => true,
            Some("description") => {
                text_len(&block["term"]) > 0
                    && block["content"]["type"] == "text"
                    && text_len(&block["content"]["text"]) > 0
            }
            _ => false,
        };
        if !ok {
            return Some(format!("invalid block {block}"));
        }
    }
    None
}

/// PagerDuty Events API v2: routing_key (32 characters), event_action, payload.summary (at
/// most 1024), payload.source, payload.severity (critical, error, warning, info), an ISO 8601
/// timestamp if any, dedup_key at most 255.
fn pagerduty_refusal(b: &Json) -> Option<String> {
    let mut errors = Vec::new();
    if text_len(&b["routing_key"]) != 32 {
        errors.push("routing_key must be 32 characters");
    }
    if !matches!(
        b["event_action"].as_str(),
        Some("trigger" | "acknowledge" | "resolve")
    ) {
        errors.push("event_action");
    }
    if text_len(&b["dedup_key"]) > 255 {
        errors.push("dedup_key too long");
    }
    let p = &b["payload"];
    if !(1..=1024).contains(&text_len(&p["summary"])) {
        errors.push("payload.summary");
    }
    if text_len(&p["source"]) == 0 {
        errors.push("payload.source");
    }
    if !matches!(
        p["severity"].as_str(),
        Some("critical" | "error" | "warning" | "info")
    ) {
        errors.push("payload.severity");
    }
    if let Some(t) = p["timestamp"].as_str() {
        let b = t.as_bytes();
        let iso = t.len() >= 20
            && b[4] == b'-'
            && b[7] == b'-'
            && b[10] == b'T'
            && b[13] == b':'
            && t.ends_with('Z');
        if !iso {
            errors.push("payload.timestamp");
        }
    }
    (!errors.is_empty()).then(|| errors.join(", "))
}

/// The receivers on one ephemeral port: `/slack`, `/teams`, `/kakaowork`, `/pagerduty`,
/// `/custom`.
async fn receivers() -> (String, mpsc::UnboundedReceiver<Received>) {
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::response::IntoResponse;
    let (tx, rx) = mpsc::unbounded_channel();
    let route = |service: &'static str| {
        let tx = tx.clone();
        axum::routing::post(move |headers: HeaderMap, body: bytes::Bytes| {
            let tx = tx.clone();
            async move {
                let h = |n: header::HeaderName| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string()
                };
                let content_type = h(header::CONTENT_TYPE);
                let Ok(json) = serde_json::from_slice::<Json>(&body) else {
                    return (StatusCode::BAD_REQUEST, "invalid_payload").into_response();
                };
                let refusal = if !content_type.starts_with("application/json") {
                    Some(format!("content type {content_type}"))
                } else {
                    match service {
                        "slack" => slack_refusal(&json),
                        "teams" => teams_refusal(&json),
                        "kakaowork" => kakaowork_refusal(&json),
                        "pagerduty" => pagerduty_refusal(&json),
                        _ => None,
                    }
                };
                let _ = tx.send(Received {
                    service,
                    content_type,
                    user_agent: h(header::USER_AGENT),
                    signature: headers
                        .get("x-dcim-signature")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned),
                    body: json.clone(),
                    raw: body.to_vec(),
                });
                if let Some(why) = refusal {
                    return match service {
                        "pagerduty" => (
                            StatusCode::BAD_REQUEST,
                            axum::Json(json!({"status": "invalid event", "message": "Event object is invalid", "errors": [why]})),
                        )
                            .into_response(),
                        _ => (StatusCode::BAD_REQUEST, why).into_response(),
                    };
                }
                match service {
                    "slack" => (StatusCode::OK, "ok").into_response(),
                    "teams" => StatusCode::ACCEPTED.into_response(),
                    "kakaowork" => (StatusCode::OK, axum::Json(json!({"success": true}))).into_response(),
                    "pagerduty" => (
                        StatusCode::ACCEPTED,
                        axum::Json(json!({"status": "success", "message": "Event processed", "dedup_key": json["dedup_key"]})),
                    )
                        .into_response(),
                    _ => StatusCode::NO_CONTENT.into_response(),
                }
            }
        })
    };
    let app = axum::Router::new()
        .route("/slack", route("slack"))
        .route("/teams", route("teams"))
        .route("/kakaowork", route("kakaowork"))
        .route("/pagerduty", route("pagerduty"))
        .route("/custom", route("custom"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (base, rx)
}

/// A `[[notify.channels]]` webhook `name` posting `format` bodies to the receiver of that
/// format at `base`.
fn webhook(name: &str, format: &str, base: &str) -> String {
    format!(
        "[[notify.channels]]\nname = \"{name}\"\nkind = \"webhook\"\nformat = \"{format}\"\nurl = \"{base}/{format}\"\n"
    )
}

/// A PagerDuty Events v2 channel `name` with the test's routing key.
fn pagerduty(name: &str, base: &str) -> String {
    webhook(name, "pagerduty", base) + &format!("routing_key = \"{ROUTING_KEY}\"\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_service_gets_a_body_it_accepts_about_the_alarm() {
    let (base, mut got) = receivers().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = notify_config(
        dir.path(),
        &format!(
            r#"grade2 = ["slack", "teams", "kakaowork", "pagerduty", "custom"]
{}{}[[notify.channels]]
name = "custom"
kind = "webhook"
format = "custom"
secret = "{SECRET}"
url = "{base}/custom"
template = '{{"summary": "{{{{subject}}}}", "alarm": "{{{{alarm}}}}", "grade": {{{{grade}}}}, "severity": "{{{{severity}}}}", "at": "{{{{time}}}}", "details": "{{{{body}}}}"}}'
"#,
            ["slack", "teams", "kakaowork"]
                .map(|f| webhook(f, f, &base))
                .concat(),
            pagerduty("pagerduty", &base),
        ),
    );
    let (server, client, Tokens { admin, .. }) = started(cfg).await;
    let mut a1 = Agent::connect(&server, "a1").await;
    let before = dcim_clock::now_ms();
    a1.send("dcim/v1/s1/a1/telemetry", on_battery(1, "ups-1"))
        .await;

    let mut by_service = std::collections::BTreeMap::new();
    while by_service.len() < 5 {
        let r = tokio::time::timeout(Duration::from_secs(10), got.recv())
            .await
            .unwrap_or_else(|_| panic!("only {:?} received", by_service.keys().collect::<Vec<_>>()))
            .unwrap();
        assert!(
            by_service.insert(r.service, r).is_none(),
            "one message per service"
        );
    }
    for r in by_service.values() {
        assert_eq!(r.content_type, "application/json", "{}", r.service);
        assert_eq!(r.user_agent, "dcim-server", "{}", r.service);
    }
    let alarm = "ups-on-battery:ups-1";

    let slack = &by_service["slack"].body;
    assert!(slack_refusal(slack).is_none());
    let title = slack["text"].as_str().unwrap();
    assert!(title.starts_with("[G2] "), "{slack}");
    assert_eq!(slack["blocks"][0]["text"]["text"], title);
    let context = slack["blocks"][2]["elements"][0]["text"].as_str().unwrap();
    assert!(
        context.contains(alarm) && context.contains("grade 2"),
        "{context}"
    );

    let teams = &by_service["teams"].body;
    assert!(teams_refusal(teams).is_none());
    let card = &teams["attachments"][0]["content"];
    assert_eq!(card["body"][0]["text"], title);
    assert_eq!(
        card["body"][0]["color"], "Warning",
        "grade 2 is not drawn as grade 1"
    );
    let facts: Vec<(&str, &str)> = card["body"][2]["facts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["title"].as_str().unwrap(), f["value"].as_str().unwrap()))
        .collect();
    assert!(facts.contains(&("Alarm", alarm)), "{facts:?}");

    let kakao = &by_service["kakaowork"].body;
    assert!(kakaowork_refusal(kakao).is_none());
    assert_eq!(kakao["text"], title);
    assert_eq!(kakao["blocks"][0]["style"], "yellow");
    assert!(kakao.to_string().contains(alarm), "{kakao}");

    let pd = &by_service["pagerduty"].body;
    assert!(pagerduty_refusal(pd).is_none());
    assert_eq!(pd["routing_key"], ROUTING_KEY);
    assert_eq!(pd["event_action"], "trigger");
    assert_eq!(pd["dedup_key"], format!("dcim:{alarm}"));
    assert_eq!(pd["payload"]["severity"], "error", "grade 2");
    assert_eq!(pd["payload"]["summary"], title);

    let custom = &by_service["custom"];
    assert_eq!(custom.body["alarm"], alarm);
    assert_eq!(custom.body["grade"], 2);
    assert_eq!(custom.body["severity"], "error");
    assert!(
        custom.body["summary"]
            .as_str()
            .unwrap()
            .contains("[grade 2]"),
        "{}",
        custom.body
    );
    let at = custom.body["at"].as_str().unwrap();
    assert!(at.ends_with('Z') && at.len() == 24, "{at}");
    assert_eq!(
        custom.signature.as_deref(),
        Some(dcim_server::io::notify_io::sign(SECRET.as_bytes(), &custom.raw).as_str()),
        "the custom body is signed with the channel's secret"
    );
    assert!(
        by_service["slack"].signature.is_none(),
        "no secret, no signature"
    );

    // Every 2xx answer (Slack 200 "ok", Teams and PagerDuty 202) is a success: nothing failed,
    // nothing went to a fallback.
    eventually_metric(
        "five sends counted",
        &client,
        &server,
        &admin,
        "dcim_notify_sent_total",
        5.0,
    )
    .await;
    assert_eq!(
        metric(&client, &server, &admin, "dcim_notify_failures_total").await,
        0.0
    );
    assert!(dcim_clock::now_ms() - before < 10_000);
    drop(a1);
    server.shutdown().await;
}

/// The receivers refuse what the services refuse; otherwise the test above could not fail.
#[test]
fn the_receivers_refuse_what_the_services_refuse() {
    assert!(slack_refusal(&json!({})).is_some());
    assert!(slack_refusal(&json!({"text": "x", "blocks": [{"type": "header", "text": {"type": "mrkdwn", "text": "x"}}]})).is_some());
    assert!(slack_refusal(&json!({"text": "x", "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "x".repeat(151)}}]})).is_some());
    assert!(teams_refusal(&json!({"type": "message", "attachments": [{"contentType": "text/html", "content": {}}]})).is_some());
    assert!(teams_refusal(&json!({"text": "a MessageCard"})).is_some());
    assert!(kakaowork_refusal(&json!({"blocks": []})).is_some());
    assert!(kakaowork_refusal(&json!({"text": "x", "blocks": [{"type": "header", "text": "longer than twenty chars", "style": "red"}]})).is_some());
    assert!(pagerduty_refusal(&json!({"routing_key": "short", "event_action": "trigger", "payload": {"summary": "s", "source": "x", "severity": "error"}})).is_some());
    assert!(pagerduty_refusal(&json!({"routing_key": ROUTING_KEY, "event_action": "trigger", "payload": {"summary": "s", "source": "x", "severity": "high"}})).is_some());
    assert!(pagerduty_refusal(&json!({"routing_key": ROUTING_KEY, "event_action": "trigger", "payload": {"summary": "s", "source": "x", "severity": "error", "timestamp": "yesterday"}})).is_some());
    assert!(pagerduty_refusal(&json!({"routing_key": ROUTING_KEY, "event_action": "trigger", "payload": {"summary": "s", "source": "x", "severity": "error", "timestamp": "2026-01-31T12:00:00.000Z"}})).is_none());
}

/// A service that refuses the body (Slack's 400 `invalid_payload`) is a failed send: counted,
/// audited, and the notification goes on to the channel's fallback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_body_is_a_failure_and_goes_to_the_fallback() {
    let (base, mut got) = receivers().await;
    let dir = tempfile::tempdir().unwrap();
    // The JSON format is not what Slack accepts (no text, no blocks): Slack answers 400.
    let cfg = notify_config(
        dir.path(),
        &format!(
            r#"grade2 = ["wrong-format"]
[[notify.channels]]
name = "wrong-format"
kind = "webhook"
url = "{base}/slack"
fallback = "pd"
{}"#,
            pagerduty("pd", &base)
        ),
    );
    let (server, client, Tokens { admin, .. }) = started(cfg).await;
    let mut a1 = Agent::connect(&server, "a1").await;
    a1.send("dcim/v1/s1/a1/telemetry", on_battery(1, "ups-1"))
        .await;
    let first = tokio::time::timeout(Duration::from_secs(10), got.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.service, "slack");
    let second = tokio::time::timeout(Duration::from_secs(10), got.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.service, "pagerduty");
    assert_eq!(second.body["custom_details"], Json::Null);
    assert_eq!(
        second.body["payload"]["custom_details"]["planned_channel"],
        "wrong-format"
    );
    eventually("the failure and the fallback counted", || async {
        metric(&client, &server, &admin, "dcim_notify_failures_total").await == 1.0
            && metric(&client, &server, &admin, "dcim_notify_fallbacks_total").await == 1.0
            && metric(&client, &server, &admin, "dcim_notify_sent_total").await == 1.0
    })
    .await;
    drop(a1);
    server.shutdown().await;
}
