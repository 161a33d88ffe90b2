//! MQTT device driver: devices that publish their readings themselves (thermal cameras with one
//! JSON message per region, network probes). The device profile (`protocol = "mqtt"`) gives per
//! point a topic (with `{device}` replaced by the device id) and a JSON pointer into the message.
//!
//! [`MqttDevice`] is the pure part: it turns a message into samples through the profile's
//! decoding and the shared `DeviceTracker` (quality, deadband, comm-lost), and reports
//! comm-lost / restored transitions as events. [`run`] is the shell: a rumqttc client that
//! resubscribes on every clean-session ConnAck and ticks the tracker once a second.

use crate::config::Endpoint;
use crate::ingest::Ingest;
use crate::payload::EventDraft;
use crate::uplink::backoff::Backoff;
use dcim_points::Sample;
use dcim_profiles::{Address, DeviceTracker, Profile, Protocol, Reading};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{info, warn};

pub struct MqttDevice {
    device: String,
    profile: Profile,
    tracker: DeviceTracker,
    /// Topic -> indices of the profile's points read from it.
    by_topic: BTreeMap<String, Vec<usize>>,
}

impl MqttDevice {
    /// The device's id.
    pub fn id(&self) -> &str {
        &self.device
    }

    pub fn new(device: &str, profile: Profile, now_ms: i64) -> Result<MqttDevice, String> {
        profile.require_protocol(Protocol::Mqtt)?;
        let mut by_topic: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, p) in profile.points.iter().enumerate() {
            if let Address::Mqtt(a) = &p.address {
                by_topic.entry(a.topic_for(device)).or_default().push(i);
            }
        }
        Ok(MqttDevice {
            device: device.to_owned(),
            tracker: DeviceTracker::new(device, &profile, now_ms),
            profile,
            by_topic,
        })
    }

    pub fn topics(&self) -> impl Iterator<Item = &str> {
        self.by_topic.keys().map(String::as_str)
    }

    /// A message arrived on `topic`.
    pub fn on_message(
        &mut self,
        topic: &str,
        payload: &[u8],
        now_ms: i64,
        out: &mut Vec<Sample>,
    ) -> Option<EventDraft> {
        let indices = self.by_topic.get(topic)?.clone();
        let before = self.tracker.online();
        self.tracker.answered(now_ms, out);
        match serde_json::from_slice::<serde_json::Value>(payload) {
            Ok(msg) => {
                for i in indices {
                    let r = self.profile.points[i].reading_from_json(&msg);
                    self.tracker.reading(i, r, now_ms, out);
                }
            }
            Err(_) => {
                for i in indices {
                    self.tracker.reading(i, Reading::bad(None), now_ms, out);
                }
            }
        }
        self.transition(before, now_ms)
    }

    /// Periodic check for comm loss.
    pub fn tick(&mut self, now_ms: i64, out: &mut Vec<Sample>) -> Option<EventDraft> {
        let before = self.tracker.online();
        self.tracker.tick(now_ms, out);
        self.transition(before, now_ms)
    }

    fn transition(&self, before: Option<bool>, now_ms: i64) -> Option<EventDraft> {
        EventDraft::comm_change(
            &self.device,
            before,
            self.tracker.online(),
            ["stopped publishing", "publishes again"],
            now_ms,
            serde_json::json!({ "profile": self.profile.name }),
        )
    }
}

pub struct MqttConn {
    pub endpoint: Endpoint,
    pub credentials: Option<(String, String)>,
    pub tls: Option<rustls::ClientConfig>,
}

pub async fn run(
    ingest: Arc<Ingest>,
    mut dev: MqttDevice,
    conn: MqttConn,
    mut shutdown: watch::Receiver<bool>,
) {
    let shared = ingest.shared().clone();
    let client_id = format!("dcim-{}-{}-dev-{}", shared.site, shared.agent, dev.device);
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let deliver = |ingest: &Ingest, samples: Vec<Sample>, event: Option<EventDraft>| {
        if let Some(e) = event {
            warn!(device = %e.device, kind = %e.kind, "{}", e.message);
            let _ = ingest.event(e);
        }
        ingest.samples(samples);
    };
    loop {
        let mut o = MqttOptions::new(
            client_id.clone(),
            conn.endpoint.host.clone(),
            conn.endpoint.port,
        );
        o.set_keep_alive(Duration::from_secs(15))
            .set_clean_session(true)
            .set_max_packet_size(1 << 20, 64 << 10);
        if let Some((u, p)) = &conn.credentials {
            o.set_credentials(u.clone(), p.clone());
        }
        if let Some(tls) = &conn.tls {
            o.set_transport(rumqttc::Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(Arc::new(tls.clone())),
            ));
        }
        let (client, mut eventloop) = AsyncClient::new(o, 64);
        let err = loop {
            tokio::select! {
                ev = eventloop.poll() => match ev {
                    Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                        backoff.reset();
                        info!(device = %dev.device, "connected to device broker");
                        if !ack.session_present {
                            for t in dev.topics() {
                                let _ = client.try_subscribe(t.to_owned(), QoS::AtLeastOnce);
                            }
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let mut out = Vec::new();
                        let ev = dev.on_message(&p.topic, &p.payload, ingest.clock().now_ms(), &mut out);
                        deliver(&ingest, out, ev);
                    }
                    Ok(_) => {}
                    Err(e) => break e,
                },
                _ = ticker.tick() => {
                    let mut out = Vec::new();
                    let ev = dev.tick(ingest.clock().now_ms(), &mut out);
                    deliver(&ingest, out, ev);
                }
                _ = shutdown.changed() => if *shutdown.borrow() { return },
            }
        };
        let delay = backoff.next_delay(0.5);
        warn!(device = %dev.device, error = %err, retry_in_ms = delay.as_millis() as u64, "device broker connection failed");
        let until = tokio::time::Instant::now() + delay;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => break,
                _ = ticker.tick() => {
                    let mut out = Vec::new();
                    let ev = dev.tick(ingest.clock().now_ms(), &mut out);
                    deliver(&ingest, out, ev);
                }
                _ = shutdown.changed() => if *shutdown.borrow() { return },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dcim_points::{Quality, Value};

    fn camera() -> Profile {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../device-profiles/thermal-camera-battery-room.toml"
        );
        dcim_profiles::load_file(std::path::Path::new(path)).unwrap()
    }

    #[test]
    fn a_region_message_becomes_samples_for_that_region() {
        let mut d = MqttDevice::new("cam-1", camera(), 0).unwrap();
        assert!(d.topics().any(|t| t == "thermal/cam-1/region/rack-03"));
        let mut out = Vec::new();
        let ev = d.on_message(
            "thermal/cam-1/region/rack-03",
            br#"{"ts_ms":1,"max_c":41.5,"avg_c":30.0,"hotspot":false}"#,
            1000,
            &mut out,
        );
        assert!(ev.is_none());
        let max = out.iter().find(|s| s.point == "rack-03_max").unwrap();
        assert_eq!(max.value, Some(Value::Number(41.5)));
        assert_eq!(max.quality, Quality::Good);
        assert_eq!(max.labels["region"], "rack-03");
        assert!(out.iter().any(|s| s.point == "rack-03_hotspot"));
        assert!(!out.iter().any(|s| s.point.starts_with("rack-04")));
        // Unknown topics are ignored.
        let mut other = Vec::new();
        assert!(
            d.on_message("thermal/cam-2/region/rack-03", b"{}", 1000, &mut other)
                .is_none()
        );
        assert!(other.is_empty());
    }

    #[test]
    fn garbage_makes_the_points_bad_and_silence_makes_them_comm_lost() {
        let mut d = MqttDevice::new("cam-1", camera(), 0).unwrap();
        let mut out = Vec::new();
        d.on_message("thermal/cam-1/region/rack-01", b"not json", 1000, &mut out);
        assert!(
            out.iter()
                .filter(|s| s.point.starts_with("rack-01"))
                .all(|s| s.quality == Quality::Bad)
        );
        out.clear();
        let ev = d.tick(1000 + 10_000, &mut out).expect("comm lost event");
        assert_eq!(ev.kind, "device.comm_lost");
        assert_eq!(ev.severity, dcim_wire::Severity::Trouble);
        assert!(out.iter().any(|s| s.quality == Quality::CommLost));
        assert!(d.tick(30_000, &mut Vec::new()).is_none(), "reported once");
        let ev = d
            .on_message(
                "thermal/cam-1/region/rack-01",
                br#"{"max_c":20,"avg_c":20,"hotspot":false}"#,
                31_000,
                &mut out,
            )
            .expect("restored event");
        assert_eq!(ev.kind, "device.comm_restored");
    }

    #[test]
    fn a_modbus_profile_is_refused() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../device-profiles/ups-modular-3ph.toml"
        );
        let p = dcim_profiles::load_file(std::path::Path::new(path)).unwrap();
        assert!(MqttDevice::new("ups", p, 0).is_err());
    }
}
