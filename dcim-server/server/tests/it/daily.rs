//! What the console's daily work reads and writes, through a real server on the demo site fed
//! over MQTT: maintenance windows that start and end by themselves (and wait under authority
//! control), PUE computed on the server and kept across a restart, CSV exports of the alarm and
//! event lists, and the global search.

use crate::common;
use common::*;
use dcim_points::{Quality, Sample, Value};
use reqwest::StatusCode;
use serde_json::{Value as Json, json};
use std::time::Duration;

/// An operator enters or exits (`action`) authority control with `reason`.
async fn authority(
    client: &reqwest::Client,
    base: &str,
    op: &str,
    action: &str,
    reason: &str,
) -> (StatusCode, Json) {
    let url = format!("{base}/api/authority/{action}");
    post_json(client, &url, op, json!({ "reason": reason })).await
}

struct Feed {
    c: rumqttc::AsyncClient,
    el: rumqttc::EventLoop,
    seq: u64,
}

impl Feed {
    async fn connect(server: &dcim_server::Server) -> Feed {
        let mq = server.mqtt_addr.unwrap();
        let (c, el, r) = mqtt_agent(&mq.ip().to_string(), mq.port(), "a1", "a1-secret").await;
        r.unwrap();
        Feed { c, el, seq: 0 }
    }
    async fn send(&mut self, samples: &[Sample]) {
        for chunk in samples.chunks(500) {
            self.seq += 1;
            publish(
                &self.c,
                &mut self.el,
                "dcim/v1/demo/a1/telemetry",
                batch(self.seq, chunk),
            )
            .await
            .unwrap();
        }
    }
}

fn healthy() -> Vec<Sample> {
    let site = dcim_site::Site::load(&demo_site()).unwrap();
    dcim_site::fixture::healthy_samples(&site, dcim_clock::now_ms())
}

async fn in_maintenance(client: &reqwest::Client, base: &str, token: &str, id: &str) -> bool {
    get_json(client, &format!("{base}/api/maintenance"), token).await["maintenance"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x == id)
}

#[tokio::test]
async fn a_maintenance_window_starts_and_ends_by_itself_and_waits_under_authority_control() {
    // Hazard: a window that never ends hides a UPS's alarms for good; one applied while the
    // fire authority is in command changes what it sees behind its back.
    let dir = tempfile::tempdir().unwrap();
    let (server, client, tokens) = started_with_users(site_config(dir.path())).await;
    let (viewer, op, admin, fire) = (&tokens[0].1, &tokens[1].1, &tokens[2].1, &tokens[3].1);
    let base = format!("http://{}", server.http_addr);
    let mut feed = Feed::connect(&server).await;
    feed.send(&healthy()).await;
    let windows = format!("{base}/api/maintenance/windows");
    let now = dcim_clock::now_ms();

    // Refused field by field; viewers and the fire authority cannot schedule.
    let (st, body) = post_json(&client, &windows, op, json!({"subjects": ["ups-z9"], "who": "Kim", "reason": "x", "from_ms": now, "to_ms": now + 60_000})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("subjects: `ups-z9`"),
        "{body}"
    );
    let (st, _) = post_json(&client, &windows, op, json!({"subjects": ["ups-z1"], "who": "Kim", "reason": "x", "from_ms": now + 9_000, "to_ms": now + 8_000})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    for t in [viewer, fire] {
        let (st, _) = post_json(&client, &windows, t, json!({"subjects": ["ups-z1"], "who": "Kim", "reason": "x", "from_ms": now + 2_000, "to_ms": now + 4_000})).await;
        assert_eq!(st, StatusCode::FORBIDDEN);
    }

    let (st, w) = post_json(&client, &windows, op, json!({"subjects": ["ups-z1", "pdu-h1-01a"], "who": "Kim (UPS vendor)", "reason": "Battery string replacement", "from_ms": now + 1_500, "to_ms": now + 4_500})).await;
    assert_eq!(st, StatusCode::CREATED, "{w}");
    assert_eq!(w["window"]["status"], "scheduled");
    assert!(!in_maintenance(&client, &base, viewer, "ups-z1").await);
    eventually("the window to start", || async {
        in_maintenance(&client, &base, viewer, "ups-z1").await
    })
    .await;
    let list = get_json(&client, &windows, viewer).await;
    assert_eq!(list["windows"][0]["status"], "active", "{list}");
    assert_eq!(
        list["windows"][0]["applied"],
        json!(["ups-z1", "pdu-h1-01a"])
    );
    eventually("the window to end by itself", || async {
        !in_maintenance(&client, &base, viewer, "ups-z1").await
    })
    .await;
    assert!(!in_maintenance(&client, &base, viewer, "pdu-h1-01a").await);
    let audit = get_json(&client, &format!("{base}/api/audit"), admin)
        .await
        .to_string();
    for want in [
        "maintenance.window.create",
        "\"actor\":\"window:1\"",
        "maintenance.set",
    ] {
        assert!(audit.contains(want), "audit lacks {want}");
    }

    // Under authority control the next window waits, then starts when it is left.
    let (st, _) = authority(&client, &base, op, "enter", "Brigade on site").await;
    assert_eq!(st, StatusCode::OK);
    let now = dcim_clock::now_ms();
    let (st, w) = post_json(&client, &windows, op, json!({"subjects": ["ups-z2"], "who": "Lee", "reason": "Fan swap", "from_ms": now + 500, "to_ms": now + 60_000})).await;
    assert_eq!(st, StatusCode::CREATED);
    let id = w["window"]["id"].as_u64().unwrap();
    eventually("the window to be held", || async {
        get_json(&client, &windows, viewer).await["windows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == id && x["held"]["what"] == "start")
    })
    .await;
    assert!(!in_maintenance(&client, &base, viewer, "ups-z2").await);
    assert!(
        get_json(&client, &format!("{base}/api/audit"), admin)
            .await
            .to_string()
            .contains("authority.refused")
    );
    let (st, _) = authority(&client, &base, op, "exit", "Handed back").await;
    assert_eq!(st, StatusCode::OK);
    eventually("the held window to start", || async {
        in_maintenance(&client, &base, viewer, "ups-z2").await
    })
    .await;
    // Ending it early is refused under authority control, and allowed after.
    authority(&client, &base, op, "enter", "Again").await;
    let cancel = format!("{base}/api/maintenance/windows/{id}/cancel");
    let (st, _) = post_json(&client, &cancel, op, json!({"reason": "done"})).await;
    assert_eq!(st, StatusCode::LOCKED);
    assert!(in_maintenance(&client, &base, viewer, "ups-z2").await);
    authority(&client, &base, op, "exit", "Handed back").await;
    let (st, w) = post_json(&client, &cancel, op, json!({"reason": "Finished early"})).await;
    assert_eq!(st, StatusCode::OK, "{w}");
    assert_eq!(
        (
            w["window"]["status"].as_str(),
            w["window"]["cancelled_by"].as_str()
        ),
        (Some("cancelled"), Some("u-operator"))
    );
    assert!(!in_maintenance(&client, &base, viewer, "ups-z2").await);
    server.shutdown().await;

    // The schedule survives a restart.
    let server = dcim_server::start(site_config(dir.path())).await.unwrap();
    let tokens = token_again(&server, "u-viewer").await;
    let list = get_json(&client, &url(&server, "/api/maintenance/windows"), &tokens).await;
    assert_eq!(list["windows"].as_array().unwrap().len(), 2, "{list}");
    server.shutdown().await;
}

#[tokio::test]
async fn pue_is_computed_on_the_server_never_from_a_partial_sum_and_energy_survives_a_restart() {
    // Hazard: a silent feed meter makes the PUE look better than it is.
    let dir = tempfile::tempdir().unwrap();
    let (server, client, tokens) = started_with_users(site_config(dir.path())).await;
    let viewer = &tokens[0].1;
    let base = format!("http://{}", server.http_addr);
    let mut feed = Feed::connect(&server).await;
    let samples = healthy();
    feed.send(&samples).await;
    let pue_url = format!("{base}/api/energy/pue");
    eventually("a complete PUE", || async {
        get_json(&client, &pue_url, viewer).await["now"]["pue"].is_number()
    })
    .await;
    let p = get_json(&client, &pue_url, viewer).await;
    let (f, i) = (
        p["now"]["facility_kw"].as_f64().unwrap(),
        p["now"]["it_kw"].as_f64().unwrap(),
    );
    assert!(
        (p["now"]["pue"].as_f64().unwrap() - f / i).abs() < 1e-9,
        "{p}"
    );
    assert_eq!(p["now"]["it_meters"], 300);
    // Two observations a second apart, stored.
    dcim_server::io::energy_io::sample_once(&server.app).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    dcim_server::io::energy_io::sample_once(&server.app).await;
    dcim_server::io::energy_io::flush(&server.app).await;
    let r = get_json(
        &client,
        &format!("{base}/api/energy/report?offset_min=540"),
        viewer,
    )
    .await;
    let kwh = r["total"]["facility_kwh"].as_f64().unwrap();
    assert!(
        kwh > 0.0 && r["total"]["covered_ms"].as_i64().unwrap() >= 900,
        "{r}"
    );
    // Feed B's meter goes silent: no PUE, and it says why.
    let lost: Vec<Sample> = samples
        .iter()
        .filter(|s| s.device == "meter-b" && s.role.as_str() == "feed.power_kw")
        .map(|s| Sample {
            quality: Quality::CommLost,
            ts_ms: dcim_clock::now_ms(),
            ..s.clone()
        })
        .collect();
    feed.send(&lost).await;
    eventually("the PUE withdrawn", || async {
        get_json(&client, &pue_url, viewer).await["now"]["pue"].is_null()
    })
    .await;
    let p = get_json(&client, &pue_url, viewer).await;
    assert_eq!(p["now"]["missing"], json!(["feed-b"]), "{p}");
    assert_eq!(p["now"]["facility_kw"], Json::Null);
    // Bad requests name the field.
    let r = client
        .get(format!("{base}/api/energy/report?month=2026-13"))
        .bearer_auth(viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("month"));
    let csv = client
        .get(format!(
            "{base}/api/energy/report?format=csv&offset_min=540"
        ))
        .bearer_auth(viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(
        csv.text()
            .await
            .unwrap()
            .starts_with("\u{feff}date,facility_kwh,it_kwh,pue")
    );
    server.shutdown().await;
    let server = dcim_server::start(site_config(dir.path())).await.unwrap();
    let token = token_again(&server, "u-viewer").await;
    let r = get_json(
        &client,
        &url(&server, "/api/energy/report?offset_min=540"),
        &token,
    )
    .await;
    assert_eq!(
        r["total"]["facility_kwh"].as_f64().unwrap(),
        kwh,
        "energy kept across the restart"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn alarm_and_event_lists_export_as_csv_with_the_console_filters_and_search_finds_racks_and_points()
 {
    let dir = tempfile::tempdir().unwrap();
    let (server, client, tokens) = started_with_users(site_config(dir.path())).await;
    let viewer = &tokens[0].1;
    let base = format!("http://{}", server.http_addr);
    let mut feed = Feed::connect(&server).await;
    let mut samples = healthy();
    for s in samples
        .iter_mut()
        .filter(|s| s.device == "meter-a" && s.role.as_str() == "feed.breaker_closed")
    {
        s.value = Some(Value::Bool(false));
    }
    feed.send(&samples).await;
    eventually("the feed-loss alarms", || async {
        let a = get_json(&client, &format!("{base}/api/alarms"), viewer).await;
        let ids: Vec<&str> = a["alarms"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|x| x["id"].as_str())
            .collect();
        ids.contains(&"redundancy:power") && ids.contains(&"feed-breaker-open:meter-a")
    })
    .await;
    let get = |q: &'static str| {
        let client = client.clone();
        let base = base.clone();
        async move {
            let r = client
                .get(format!("{base}{q}"))
                .bearer_auth(viewer)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{q}");
            assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
            assert!(
                r.headers()["content-disposition"]
                    .to_str()
                    .unwrap()
                    .starts_with("attachment; filename=\"")
            );
            r.text().await.unwrap()
        }
    };
    let all = get("/api/export/alarms.csv?offset_min=540").await;
    assert!(
        all.starts_with("\u{feff}id,grade,state,subsystem,rule,rule_name,subject,component,"),
        "{all}"
    );
    let lines: Vec<&str> = all.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("redundancy:power,2,unacknowledged,power,")),
        "{all}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("feed-breaker-open:meter-a,")
                && l.contains(",feed-a,")
                && l.contains("+09:00")),
        "{all}"
    );
    let power = get("/api/export/alarms.csv?subsystem=power&q=redundancy").await;
    assert_eq!(power.lines().count(), 2, "{power}");
    let none = get("/api/export/alarms.csv?grade=1").await;
    assert_eq!(none.lines().count(), 1, "only the header: {none}");
    let r = client
        .get(format!("{base}/api/export/alarms.csv?offset_min=9999"))
        .bearer_auth(viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let ev = get("/api/export/events.csv").await;
    assert!(
        ev.starts_with("\u{feff}time,ts_ms,device,component,room,kind,severity,message"),
        "{ev}"
    );

    let s = get_json(&client, &format!("{base}/api/search?q=r017"), viewer).await;
    let first = &s["results"][0];
    assert_eq!(
        (first["kind"].as_str(), first["id"].as_str()),
        (Some("rack"), Some("r017")),
        "{s}"
    );
    assert_eq!(first["place"]["room"], "hall-1");
    assert_eq!(first["place"]["tile"], json!([9, 3]));
    let s = get_json(
        &client,
        &format!("{base}/api/search?q=ups-z1%20battery"),
        viewer,
    )
    .await;
    assert!(
        s["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["kind"] == "point" && r["device"] == "ups-z1"),
        "{s}"
    );
    server.shutdown().await;
}
