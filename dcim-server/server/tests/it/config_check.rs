//! The configuration reference and `dcim-server --check-config`.
//!
//! Hazards: a setting that exists in the code but not in `server.example.toml` is one an
//! operator cannot find; an example that does not parse teaches a wrong file; a check that
//! passes a broken file lets a service restart loop in production; an error without file,
//! line and field leaves the operator guessing.

use dcim_server::config::Config;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

const EXAMPLE: &str = include_str!("../../server.example.toml");

/// The example with its optional settings uncommented (`# key = ...`, `# [section]`,
/// `# [[array]]` lines lose their `# `).
fn uncommented(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let rest = line.strip_prefix("# ").unwrap_or("");
        let is_setting = rest.starts_with('[')
            || rest.split_once(" = ").is_some_and(|(k, _)| {
                !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
        if is_setting {
            out.push_str(rest);
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// Dotted key paths of a JSON value (array elements share their array's path).
fn json_paths(v: &serde_json::Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.insert(p.clone());
                json_paths(v, &p, out);
            }
        }
        serde_json::Value::Array(a) => {
            for v in a {
                json_paths(v, prefix, out);
            }
        }
        _ => {}
    }
}

fn toml_paths(v: &toml::Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.insert(p.clone());
                toml_paths(v, &p, out);
            }
        }
        toml::Value::Array(a) => {
            for v in a {
                toml_paths(v, prefix, out);
            }
        }
        _ => {}
    }
}

#[test]
fn the_example_parses_as_it_is() {
    let c = Config::parse(EXAMPLE, Path::new("server.example.toml")).unwrap();
    assert_eq!(c.http.listen.port(), 8080);
    assert!(!c.notify.enabled);
}

#[test]
fn every_setting_of_every_section_is_in_the_example() {
    let full = uncommented(EXAMPLE);
    // Every optional line is a real setting of the right type (unknown fields are refused).
    let parsed: Config = toml::from_str(&full).unwrap_or_else(|e| panic!("{e}\n{full}"));
    let mut in_code = BTreeSet::new();
    json_paths(&serde_json::to_value(&parsed).unwrap(), "", &mut in_code);
    let mut in_example = BTreeSet::new();
    toml_paths(
        &toml::from_str::<toml::Value>(&full).unwrap(),
        "",
        &mut in_example,
    );
    // `dc09.zone.racks` is a map of device ids: its keys are data, not settings.
    let missing: Vec<&String> = in_code
        .iter()
        .filter(|p| !in_example.contains(*p))
        .filter(|p| !p.starts_with("dc09.zone.racks."))
        .collect();
    assert!(
        missing.is_empty(),
        "settings missing from server.example.toml: {missing:?}"
    );
    // Each section of the configuration is there.
    for section in [
        "http",
        "http.tls",
        "broker",
        "broker.tls",
        "auth",
        "log",
        "metrics",
        "history",
        "agents",
        "users",
        "influx",
        "dc09",
        "dc09.zone",
        "dc09.alarm",
        "notify",
        "notify.channels",
        "notify.escalation",
        "store",
        "cluster",
        "cluster.witness",
    ] {
        assert!(in_example.contains(section), "section {section} missing");
    }
}

fn check(text: &str) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("server.toml");
    std::fs::write(&file, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dcim-server"))
        .arg("--check-config")
        .arg(&file)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_accepts_the_example_and_the_packaged_default() {
    let (ok, out, err) = check(EXAMPLE);
    assert!(ok, "{out}{err}");
    assert!(out.contains("configuration is valid"), "{out}");
    let packaged = include_str!("../../../../packaging/config/server.toml");
    let (ok, out, err) = check(packaged);
    assert!(ok, "{out}{err}");
}

#[test]
fn check_config_names_file_line_and_field() {
    // A typo in a key.
    let (ok, _, err) = check("[http]\nlisten = \"127.0.0.1:8080\"\nlisen = 1\n");
    assert!(!ok);
    assert!(
        err.contains("server.toml") && err.contains("line 3") && err.contains("lisen"),
        "{err}"
    );
    // A value checked after parsing: its line is found from the field's name.
    let (ok, _, err) = check(
        "[[agents]]\nid = \"a1\"\nsite = \"s\"\npassword = \"x\"\ndevices = [\"d\"]\n\n[[agents]]\nid = \"a 2\"\nsite = \"s\"\npassword = \"x\"\ndevices = [\"d\"]\n",
    );
    assert!(!ok);
    assert!(
        err.contains("line 8") && err.contains("agents[1].id"),
        "{err}"
    );
    let (ok, _, err) = check("[log]\nformat = \"xml\"\n");
    assert!(!ok);
    assert!(
        err.contains("line 2") && err.contains("log.format"),
        "{err}"
    );
    let (ok, _, err) = check(
        "[notify]\nenabled = true\n[[notify.channels]]\nname = \"p\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:1/\"\nformat = \"pagerduty\"\n",
    );
    assert!(!ok);
    assert!(err.contains("notify.channels[0].routing_key"), "{err}");
    // A file the configuration names is read too.
    let (ok, _, err) = check("site_model = \"no-such-site.toml\"\n");
    assert!(!ok);
    assert!(err.contains("site model"), "{err}");
    // A missing file.
    let out = Command::new(env!("CARGO_BIN_EXE_dcim-server"))
        .args(["--check-config", "/nonexistent/server.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/server.toml"));
}
