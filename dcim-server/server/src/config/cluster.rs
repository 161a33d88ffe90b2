//! `[cluster]`: this replica, its lease timing and the witness (etcd) of a multi-site deployment.

use crate::base::leader::Timing;
use serde::{Deserialize, Serialize};

/// `[cluster]` in the server configuration.
///
/// ```toml
/// [cluster]
/// replica = "site-a"                       # unique per replica
/// site = "Site A"                          # shown to operators
/// advertise_url = "https://dcim-a.example:8443"  # this replica's console, named in refusals
/// lease_ttl_ms = 5000                      # the leader's lease; takeover after at most this
/// renew_ms = 1000
/// peer_timeout_ms = 5000                   # a heartbeat older than this is not fresh
///
/// [cluster.witness]                        # etcd of the three sites (the witness's member too)
/// etcd = ["http://10.0.1.5:2379", "http://10.0.2.5:2379", "http://10.0.3.5:2379"]
/// prefix = "/dcim/replicas/"
/// ttl_s = 5
/// ```
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    pub replica: String,
    #[serde(default)]
    pub site: String,
    #[serde(default)]
    pub advertise_url: Option<String>,
    #[serde(default = "d_ttl")]
    pub lease_ttl_ms: u64,
    #[serde(default = "d_renew")]
    pub renew_ms: u64,
    #[serde(default = "d_peer")]
    pub peer_timeout_ms: u64,
    #[serde(default)]
    pub witness: Option<WitnessConfig>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessConfig {
    /// etcd client URLs (every member; the gateway `/v3` API).
    pub etcd: Vec<String>,
    #[serde(default = "d_prefix")]
    pub prefix: String,
    /// Lifetime of a replica's key without renewal.
    #[serde(default = "d_wttl")]
    pub ttl_s: u64,
    /// Time allowed per etcd call and endpoint.
    #[serde(default = "d_wtimeout")]
    pub timeout_ms: u64,
}

fn d_ttl() -> u64 {
    5000
}
fn d_renew() -> u64 {
    1000
}
fn d_peer() -> u64 {
    5000
}
fn d_prefix() -> String {
    "/dcim/replicas/".into()
}
fn d_wttl() -> u64 {
    5
}
fn d_wtimeout() -> u64 {
    1000
}

impl ClusterConfig {
    /// Checks the section; `Err((field, message))`.
    pub fn validate(&self, _config: &crate::config::Config) -> Result<(), (String, String)> {
        if dcim_wire::check_identifier(&self.replica).is_err() {
            return Err((
                "cluster.replica".into(),
                format!("`{}` must be 1-64 of [A-Za-z0-9._-]", self.replica),
            ));
        }
        self.timing()
            .validate()
            .map_err(|m| ("cluster.lease_ttl_ms".to_string(), m))?;
        if self.peer_timeout_ms < 2 * self.renew_ms {
            return Err((
                "cluster.peer_timeout_ms".into(),
                "must be at least two heartbeats (2 x renew_ms)".into(),
            ));
        }
        if let Some(u) = &self.advertise_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            return Err((
                "cluster.advertise_url".into(),
                "expected http:// or https:// URL".into(),
            ));
        }
        if let Some(w) = &self.witness {
            if w.etcd.is_empty() {
                return Err((
                    "cluster.witness.etcd".into(),
                    "list the etcd members' client URLs".into(),
                ));
            }
            if let Some(u) = w
                .etcd
                .iter()
                .find(|u| !(u.starts_with("http://") || u.starts_with("https://")))
            {
                return Err((
                    "cluster.witness.etcd".into(),
                    format!("`{u}`: expected http:// or https:// URL"),
                ));
            }
            if w.ttl_s < 2 || w.timeout_ms == 0 {
                return Err((
                    "cluster.witness.ttl_s".into(),
                    "ttl_s must be at least 2 and timeout_ms at least 1".into(),
                ));
            }
        }
        Ok(())
    }

    pub fn timing(&self) -> Timing {
        Timing::new(self.lease_ttl_ms as i64, self.renew_ms as i64)
    }
}
