//! The witness: replica heartbeats in etcd through its v3 JSON gateway (`/v3/...`, served by
//! every etcd 3.4 member), so that a replica cut off from the database can still be heard by
//! the others as long as it reaches the etcd quorum (the witness site's member relays).
//!
//! Each replica keeps one key `{prefix}{replica}` attached to an etcd lease of `ttl_s`; etcd
//! deletes the key when the replica stops keeping the lease alive. A key that is present is
//! a replica that is alive; a key that is absent (read from a working etcd) is a replica that is
//! gone. Keys and values travel base64-encoded, as the gateway wants.
//!
//! Calls try the endpoints in turn, each bounded by `timeout`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use std::time::Duration;

pub struct Witness {
    endpoints: Vec<String>,
    prefix: String,
    ttl_s: i64,
    http: reqwest::Client,
    lease: tokio::sync::Mutex<Option<i64>>,
}

/// The end of a prefix range (the prefix with its last byte incremented).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn id_of(v: &Value) -> Option<i64> {
    // int64 fields come back as JSON strings from the gateway
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

impl Witness {
    pub fn new(endpoints: Vec<String>, prefix: String, ttl_s: i64, timeout: Duration) -> Witness {
        Witness {
            endpoints: endpoints
                .into_iter()
                .map(|e| e.trim_end_matches('/').to_owned())
                .collect(),
            prefix,
            ttl_s,
            http: reqwest::Client::builder()
                .timeout(timeout)
                .no_proxy()
                .build()
                .unwrap_or_default(),
            lease: tokio::sync::Mutex::new(None),
        }
    }

    async fn call(&self, path: &str, body: &Value) -> Result<Value, String> {
        let mut errors = Vec::new();
        for e in &self.endpoints {
            let r = self
                .http
                .post(format!("{e}{path}"))
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await;
            match r {
                Ok(r) if r.status().is_success() => {
                    let bytes = r.bytes().await.map_err(|e| e.to_string())?;
                    return serde_json::from_slice(&bytes).map_err(|e| e.to_string());
                }
                Ok(r) => errors.push(format!("{e}: HTTP {}", r.status())),
                Err(err) => errors.push(format!("{e}: {err}")),
            }
        }
        Err(errors.join("; "))
    }

    /// Writes this replica's heartbeat (creating or renewing its etcd lease).
    pub async fn beat(&self, replica: &str, body: &Value) -> Result<(), String> {
        let mut lease = self.lease.lock().await;
        if let Some(id) = *lease {
            let r = self.call("/v3/lease/keepalive", &json!({"ID": id})).await?;
            // An expired lease answers without a TTL (or 0): grant a new one.
            if id_of(&r["result"]["TTL"]).unwrap_or(0) <= 0 {
                *lease = None;
            }
        }
        let id = match *lease {
            Some(id) => id,
            None => {
                let r = self
                    .call("/v3/lease/grant", &json!({"TTL": self.ttl_s}))
                    .await?;
                let id = id_of(&r["ID"]).ok_or_else(|| format!("lease grant: {r}"))?;
                *lease = Some(id);
                id
            }
        };
        let key = format!("{}{replica}", self.prefix);
        self.call(
            "/v3/kv/put",
            &json!({"key": B64.encode(key), "value": B64.encode(body.to_string()), "lease": id}),
        )
        .await?;
        Ok(())
    }

    /// Every replica's heartbeat present in etcd, by replica id.
    pub async fn read(&self) -> Result<std::collections::BTreeMap<String, Value>, String> {
        let r = self
            .call(
                "/v3/kv/range",
                &json!({
                    "key": B64.encode(&self.prefix),
                    "range_end": B64.encode(prefix_end(self.prefix.as_bytes())),
                }),
            )
            .await?;
        let mut out = std::collections::BTreeMap::new();
        for kv in r["kvs"].as_array().into_iter().flatten() {
            let key = kv["key"]
                .as_str()
                .and_then(|k| B64.decode(k.as_bytes()).ok())
                .and_then(|k| String::from_utf8(k).ok());
            let value = kv["value"]
                .as_str()
                .and_then(|v| B64.decode(v.as_bytes()).ok())
                .and_then(|v| serde_json::from_slice::<Value>(&v).ok());
            if let (Some(k), Some(v)) = (key, value)
                && let Some(id) = k.strip_prefix(&self.prefix)
            {
                out.insert(id.to_owned(), v);
            }
        }
        Ok(out)
    }

    /// Removes this replica's heartbeat at once (graceful stop).
    pub async fn leave(&self) {
        if let Some(id) = self.lease.lock().await.take() {
            let _ = self.call("/v3/lease/revoke", &json!({"ID": id})).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ranges() {
        assert_eq!(prefix_end(b"/dcim/r/"), b"/dcim/r0".to_vec());
        assert_eq!(prefix_end(&[0x61, 0xff]), vec![0x62]);
        assert_eq!(prefix_end(&[0xff]), vec![0]);
    }

    #[test]
    fn gateway_ids_may_be_strings_or_numbers() {
        assert_eq!(
            id_of(&json!("7587862115234718000")),
            Some(7587862115234718000)
        );
        assert_eq!(id_of(&json!(12)), Some(12));
        assert_eq!(id_of(&json!(null)), None);
    }
}
