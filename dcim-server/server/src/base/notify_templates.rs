//! Webhook bodies per chat or paging service (`format` of a `kind = "webhook"` channel):
//!
//! | `format` | service | body |
//! |---|---|---|
//! | `json` (default) | any receiver of dcim's own document | `{"alarm", "grade", "subject", "body", "escalation", "planned_channel", "channel", "ts_ms"}` |
//! | `slack` | Slack incoming webhook | `text` (the notification fallback) and Block Kit `blocks`: header, body, context line |
//! | `teams` | Microsoft Teams workflow webhook ("Post to a channel when a webhook request is received") | a `message` with one Adaptive Card 1.4 attachment: title, body, facts |
//! | `kakaowork` | KakaoWork incoming webhook | `text` (the push preview) and KakaoWork Block Kit `blocks`: header, text, descriptions |
//! | `pagerduty` | PagerDuty Events API v2 (`/v2/enqueue`) | `trigger` with `routing_key`, `dedup_key` `dcim:<alarm>` (repeats and escalations of one alarm are one incident), `payload.severity` from the grade (1 critical, 2 error, 3 warning) |
//! | `custom` | anything else | `template`: JSON text with `{{alarm}}`, `{{grade}}`, `{{subject}}`, `{{body}}`, `{{severity}}`, `{{time}}` (RFC 3339, UTC), `{{ts_ms}}`, `{{escalation}}`, `{{channel}}`, `{{planned_channel}}`, each replaced by its JSON-escaped text (write the quotes in the template) |
//!
//! Rendering is pure (the time is passed in); a custom template is checked at load by
//! rendering it once and parsing the result as JSON.

use dcim_alarms::Delivery;
use serde_json::{Value, json};

/// A channel's body format.
#[derive(Debug, Clone, PartialEq)]
pub enum Format {
    Json,
    Slack,
    Teams,
    KakaoWork,
    PagerDuty { routing_key: String },
    Custom { template: String },
}

/// The names `format` accepts.
pub const FORMATS: &str = "json, slack, teams, kakaowork, pagerduty or custom";

/// PagerDuty severity of an alarm grade (1 = worst).
pub fn severity(grade: u8) -> &'static str {
    match grade {
        0 | 1 => "critical",
        2 => "error",
        _ => "warning",
    }
}

/// RFC 3339 UTC time of a Unix time in ms (`2026-01-31T12:00:00.000Z`).
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn grade_label(d: &Delivery) -> String {
    match d.escalation {
        Some(step) => format!("grade {} · escalation step {}", d.grade, step + 1),
        None => format!("grade {}", d.grade),
    }
}

/// The body for `d` sent on `channel` at `now_ms`.
pub fn render(format: &Format, d: &Delivery, channel: &str, now_ms: i64) -> Result<Value, String> {
    let time = rfc3339(now_ms);
    let title = format!("[G{}] {}", d.grade, d.subject);
    Ok(match format {
        Format::Json => payload(d, channel, now_ms),
        Format::Slack => json!({
            "text": title,
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": truncate(&title, 150), "emoji": false}},
                {"type": "section", "text": {"type": "mrkdwn", "text": truncate(&d.body, 3000)}},
                {"type": "context", "elements": [
                    {"type": "mrkdwn", "text": format!("alarm `{}` · {} · {}", d.alarm, grade_label(d), time)}
                ]}
            ]
        }),
        Format::Teams => json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": null,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [
                        {"type": "TextBlock", "text": title, "weight": "Bolder", "size": "Medium", "wrap": true,
                         "color": if d.grade <= 1 { "Attention" } else { "Warning" }},
                        {"type": "TextBlock", "text": d.body, "wrap": true},
                        {"type": "FactSet", "facts": [
                            {"title": "Alarm", "value": d.alarm},
                            {"title": "Grade", "value": grade_label(d)},
                            {"title": "Time", "value": time}
                        ]}
                    ]
                }
            }]
        }),
        Format::KakaoWork => json!({
            "text": title,
            "blocks": [
                {"type": "header", "text": truncate(&title, 20), "style": if d.grade <= 1 { "red" } else { "yellow" }},
                {"type": "text", "text": truncate(&d.subject, 500), "markdown": false},
                {"type": "text", "text": truncate(&d.body, 500), "markdown": false},
                {"type": "divider"},
                {"type": "description", "term": "경보", "content": {"type": "text", "text": d.alarm, "markdown": false}, "accent": true},
                {"type": "description", "term": "등급", "content": {"type": "text", "text": grade_label(d), "markdown": false}, "accent": true},
                {"type": "description", "term": "시각", "content": {"type": "text", "text": time, "markdown": false}, "accent": true}
            ]
        }),
        Format::PagerDuty { routing_key } => json!({
            "routing_key": routing_key,
            "event_action": "trigger",
            "dedup_key": format!("dcim:{}", d.alarm),
            "payload": {
                "summary": truncate(&title, 1024),
                "source": "dcim-server",
                "severity": severity(d.grade),
                "timestamp": time,
                "component": d.alarm,
                "class": format!("grade {}", d.grade),
                "custom_details": {"body": d.body, "escalation": d.escalation, "planned_channel": d.channel, "channel": channel}
            }
        }),
        Format::Custom { template } => {
            let text = fill(template, d, channel, now_ms, &time);
            serde_json::from_str(&text)
                .map_err(|e| format!("the template does not give JSON: {e}"))?
        }
    })
}

fn truncate(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max_chars.saturating_sub(1)).collect();
    t.push('…');
    t
}

/// JSON string contents (without the quotes).
fn escaped(s: &str) -> String {
    let q = serde_json::to_string(s).unwrap_or_default();
    q[1..q.len() - 1].to_string()
}

fn fill(template: &str, d: &Delivery, channel: &str, now_ms: i64, time: &str) -> String {
    let esc = d
        .escalation
        .map(|e| (e + 1).to_string())
        .unwrap_or_default();
    let vars: [(&str, String); 10] = [
        ("alarm", escaped(&d.alarm)),
        ("grade", d.grade.to_string()),
        ("subject", escaped(&d.subject)),
        ("body", escaped(&d.body)),
        ("severity", severity(d.grade).to_string()),
        ("time", time.to_string()),
        ("ts_ms", now_ms.to_string()),
        ("escalation", esc),
        ("channel", escaped(channel)),
        ("planned_channel", escaped(&d.channel)),
    ];
    let mut out = template.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("{{{{{k}}}}}"), &v);
    }
    out
}

/// A delivery to render templates with at load.
pub fn sample_delivery() -> Delivery {
    Delivery {
        channel: "sample".into(),
        alarm: "fire-stage:rack-\"A\"".into(),
        grade: 1,
        subject: "Fire stage 2 at rack A-01".into(),
        body: "line 1\nline 2 with \"quotes\" and \\ backslash".into(),
        escalation: Some(0),
    }
}

/// The JSON document sent by webhook and MQTT channels.
pub fn payload(d: &Delivery, channel: &str, now_ms: i64) -> serde_json::Value {
    serde_json::json!({
        "alarm": d.alarm,
        "grade": d.grade,
        "subject": d.subject,
        "body": d.body,
        "escalation": d.escalation,
        "planned_channel": d.channel,
        "channel": channel,
        "ts_ms": now_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn every_format_renders_the_alarm_in_the_services_shape() {
        // Hazard: a body the service does not accept (Slack 400 "no_text", a Teams card that
        // does not render, a PagerDuty event without routing key) is a notification lost.
        let d = sample_delivery();
        let slack = render(&Format::Slack, &d, "c", 0).unwrap();
        assert!(
            slack["text"]
                .as_str()
                .unwrap()
                .starts_with("[G1] Fire stage 2")
        );
        assert_eq!(slack["blocks"][0]["type"], "header");
        let teams = render(&Format::Teams, &d, "c", 0).unwrap();
        let card = &teams["attachments"][0];
        assert_eq!(
            card["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert_eq!(card["content"]["type"], "AdaptiveCard");
        assert_eq!(card["content"]["body"][1]["text"], d.body);
        let kakao = render(&Format::KakaoWork, &d, "c", 0).unwrap();
        assert!(kakao["text"].as_str().is_some());
        assert!(kakao["blocks"][0]["text"].as_str().unwrap().chars().count() <= 20);
        let pd = render(
            &Format::PagerDuty {
                routing_key: "R0UT1NG".into(),
            },
            &d,
            "c",
            0,
        )
        .unwrap();
        assert_eq!(pd["routing_key"], "R0UT1NG");
        assert_eq!(pd["event_action"], "trigger");
        assert_eq!(pd["dedup_key"], "dcim:fire-stage:rack-\"A\"");
        assert_eq!(pd["payload"]["severity"], "critical");
        assert_eq!(pd["payload"]["source"], "dcim-server");
    }

    #[test]
    fn custom_templates_escape_what_they_insert() {
        // Hazard: a quote or newline in an alarm text breaking the JSON of the body.
        let d = sample_delivery();
        let t = Format::Custom {
            template: r#"{"msg": "{{subject}}: {{body}}", "sev": "{{severity}}", "g": {{grade}}, "at": "{{time}}"}"#.into(),
        };
        let v = render(&t, &d, "c", 1_700_000_000_123).unwrap();
        assert_eq!(v["msg"], format!("{}: {}", d.subject, d.body));
        assert_eq!(v["g"], 1);
        assert_eq!(v["at"], "2023-11-14T22:13:20.123Z");
        let broken = Format::Custom {
            template: r#"{"msg": {{subject}}}"#.into(),
        };
        assert!(render(&broken, &d, "c", 0).is_err());
    }
}
