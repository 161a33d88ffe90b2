//! The point model: every value that flows through the product is a [`Sample`] of a point
//! `(site, device, point, value, unit, quality, timestamp)`, tagged with a semantic [`Role`]
//! from one vocabulary so that the server reasons on roles, not on vendor registers.
//!
//! The site is implied by the agent that publishes a sample (see `dcim-wire`), so a sample
//! carries only the device and point identifiers.
//!
//! `vocabulary_markdown()` renders `ROLES` as the table in `device-profiles/README.md` (a
//! `dcim-profiles` test keeps the two equal).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

mod roles;
pub use roles::{ROLES, RoleDef, RoleKind, vocabulary_markdown};

/// How far a value can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    /// Read from the device in the last poll and plausible.
    Good,
    /// The device answers, but this value has not been refreshed within its poll class.
    Stale,
    /// The device answered with a value that fails its health assertion or cannot be decoded.
    Bad,
    /// The device has stopped answering; the value is the last one known, if any.
    CommLost,
}

impl Quality {
    pub fn as_str(self) -> &'static str {
        match self {
            Quality::Good => "good",
            Quality::Stale => "stale",
            Quality::Bad => "bad",
            Quality::CommLost => "comm_lost",
        }
    }
}

/// Status of a device or a service, as operators see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Up,
    Down,
    Warning,
    Maintenance,
    /// No recent evidence either way; turns into `Down` when it lasts past a timeout.
    Unknown,
}

/// A point value. Numbers are carried as `f64` after scale and offset are applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Bool(bool),
    Number(f64),
    Text(String),
}

impl Value {
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            Value::Text(_) => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            Value::Number(n) => Some(*n != 0.0),
            Value::Text(_) => None,
        }
    }
}

/// A semantic role such as `feed.voltage` or `battery.cell_temp.max`.
///
/// Roles are either in the vocabulary ([`ROLES`]) or in the `custom.` namespace, which is
/// stored and shown but never used by the redundancy or fire logic. A vocabulary role refers to
/// the vocabulary's own name (no allocation; a clone is a copy), which matters at the server's
/// ingest, where every sample carries one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Role(std::borrow::Cow<'static, str>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown role `{0}`: expected a role from the vocabulary (see dcim_points::ROLES) or one starting with `custom.`"
)]
pub struct UnknownRole(pub String);

impl Role {
    pub fn new(name: &str) -> Result<Role, UnknownRole> {
        if let Some(known) = Role::known(name) {
            Ok(known)
        } else if Role::is_custom(name) {
            Ok(Role(name.to_owned().into()))
        } else {
            Err(UnknownRole(name.to_owned()))
        }
    }

    /// The vocabulary's role named `name`.
    fn known(name: &str) -> Option<Role> {
        ROLES
            .iter()
            .find(|r| r.name == name)
            .map(|r| Role(std::borrow::Cow::Borrowed(r.name)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The vocabulary entry, `None` for `custom.` roles.
    pub fn def(&self) -> Option<&'static RoleDef> {
        ROLES.iter().find(|r| r.name == self.0)
    }

    fn is_custom(name: &str) -> bool {
        name.strip_prefix("custom.").is_some_and(|rest| {
            !rest.is_empty()
                && rest
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        })
    }
}

impl TryFrom<String> for Role {
    type Error = UnknownRole;
    fn try_from(s: String) -> Result<Role, UnknownRole> {
        match Role::known(&s) {
            Some(known) => Ok(known),
            None if Role::is_custom(&s) => Ok(Role(s.into())),
            None => Err(UnknownRole(s)),
        }
    }
}

impl From<Role> for String {
    fn from(r: Role) -> String {
        r.0.into_owned()
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One reading of one point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Device identifier, unique within the site (e.g. `ups-z1`).
    pub device: String,
    /// Point identifier, unique within the device (e.g. `load_pct`, `feed_a_voltage`).
    pub point: String,
    pub role: Role,
    /// Qualifiers of the role, e.g. `feed=A` for `feed.voltage`, `sensor=2` for `rack.temp`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// `None` when there is no value at all (e.g. a point never read before comm was lost).
    pub value: Option<Value>,
    /// Engineering unit after scaling (`V`, `kW`, `degC`, `%`, `s`, ...); empty when unitless.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub unit: String,
    pub quality: Quality,
    /// Time of the reading, milliseconds since the Unix epoch (UTC).
    pub ts_ms: i64,
}

impl Sample {
    /// A good, unitless, unlabelled sample whose point is named after its role
    /// (`ups.on_battery` → `ups_on_battery`), as simulators, benches and tests build them.
    pub fn of_role(device: impl Into<String>, role: Role, value: Value, ts_ms: i64) -> Sample {
        Sample {
            device: device.into(),
            point: role.as_str().replace('.', "_"),
            role,
            labels: BTreeMap::new(),
            value: Some(value),
            unit: String::new(),
            quality: Quality::Good,
            ts_ms,
        }
    }

    /// The key of the point within its site: `device/point`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.device, self.point)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_roles_and_custom_roles_are_accepted() {
        assert!(Role::new("feed.voltage").is_ok());
        assert!(Role::new("battery.cell_temp.max").is_ok());
        assert!(Role::new("custom.vendor_thing").is_ok());
    }

    #[test]
    fn unknown_roles_are_rejected_with_their_name() {
        let err = Role::new("feed.voltag").unwrap_err();
        assert_eq!(err.0, "feed.voltag");
        assert!(Role::new("custom.").is_err());
        assert!(Role::new("custom.a b").is_err());
    }

    #[test]
    fn a_vocabulary_role_is_the_vocabulary_name_however_it_was_made() {
        // Cost hazard: one string allocated per sample at 2 M samples/s. A vocabulary role
        // refers to the vocabulary's name; a custom one keeps its own string.
        let decoded: Role = serde_json::from_str("\"feed.voltage\"").unwrap();
        for r in [Role::new("feed.voltage").unwrap(), decoded] {
            assert!(
                matches!(r.0, std::borrow::Cow::Borrowed(_)),
                "{r} allocated"
            );
            assert_eq!(r.def().map(|d| d.name), Some("feed.voltage"));
        }
        let custom: Role = serde_json::from_str("\"custom.vendor_thing\"").unwrap();
        assert_eq!(custom, Role::new("custom.vendor_thing").unwrap());
        assert!(matches!(custom.0, std::borrow::Cow::Owned(_)));
        assert_eq!(custom.def(), None);
        assert_eq!(String::from(custom), "custom.vendor_thing");
        assert!(serde_json::from_str::<Role>("\"feed.voltag\"").is_err());
    }

    #[test]
    fn vocabulary_has_no_duplicates() {
        let mut names: Vec<_> = ROLES.iter().map(|r| r.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
    }

    #[test]
    fn sample_round_trips_through_json() {
        let s = Sample {
            device: "meter-a".into(),
            point: "voltage".into(),
            role: Role::new("feed.voltage").unwrap(),
            labels: [("feed".to_string(), "A".to_string())].into(),
            value: Some(Value::Number(22_900.0)),
            unit: "V".into(),
            quality: Quality::Good,
            ts_ms: 1_700_000_000_000,
        };
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"role\":\"feed.voltage\""));
        let back: Sample = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn a_sample_with_an_unknown_role_does_not_deserialize() {
        let json =
            r#"{"device":"d","point":"p","role":"nope","value":1,"quality":"good","ts_ms":0}"#;
        assert!(serde_json::from_str::<Sample>(json).is_err());
    }

    #[test]
    fn values_keep_their_json_type() {
        let v: Vec<Value> = serde_json::from_str(r#"[true, 1.5, "on"]"#).unwrap();
        assert_eq!(
            v,
            vec![
                Value::Bool(true),
                Value::Number(1.5),
                Value::Text("on".into())
            ]
        );
        assert_eq!(Value::Bool(true).as_f64(), Some(1.0));
        assert_eq!(Value::Text("x".into()).as_f64(), None);
    }
}
