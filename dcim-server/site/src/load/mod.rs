//! Loading a site file: TOML text in, a validated [`Site`] out, every problem a [`SiteError`]
//! with the file, the line, the field and what was expected (schema: the crate's README).
//!
//! The only I/O is [`Site::load`] reading the file. The steps, each in its own function:
//! generators expand into plain components, ids are checked, each component's upstream groups,
//! bindings, design and tank are resolved ([`components`]), the graph is put in topological
//! order (a cycle is an error), and the floor plans and rack contents are checked against the
//! components ([`layout`]). Line numbers come from one [`LineIndex`] of the text, so loading
//! stays linear in the size of the file.

mod components;
mod layout;

use crate::model::{Site, SiteError};
use dcim_source_lines::LineIndex;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;

/// The text being loaded: its name for messages and its line index.
pub(crate) struct Source<'a> {
    file: &'a str,
    lines: LineIndex,
}

impl Source<'_> {
    fn new<'a>(src: &str, file: &'a str) -> Source<'a> {
        Source {
            file,
            lines: LineIndex::new(src),
        }
    }

    /// The 1-based line of a byte offset.
    fn line(&self, offset: usize) -> usize {
        self.lines.line(offset)
    }

    fn err(&self, line: usize, field: String, message: String) -> SiteError {
        SiteError {
            file: self.file.to_owned(),
            line,
            field,
            message,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    site: RawSiteHeader,
    #[serde(default)]
    component: Vec<toml::Spanned<components::RawComponent>>,
    #[serde(default)]
    generate: Vec<toml::Spanned<components::RawGenerate>>,
    /// Floor plans ([`layout`]).
    #[serde(default)]
    plan: Vec<toml::Spanned<layout::RawPlan>>,
    /// Equipment mounted in racks ([`layout`]).
    #[serde(default)]
    asset: Vec<toml::Spanned<layout::RawAsset>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSiteHeader {
    name: String,
    #[serde(default = "default_stale")]
    stale_after_ms: i64,
    #[serde(default = "default_vtol")]
    voltage_tolerance_pct: f64,
    #[serde(default = "default_rack_units")]
    rack_units: u32,
}

fn default_rack_units() -> u32 {
    crate::layout::DEFAULT_RACK_UNITS
}

fn default_stale() -> i64 {
    30_000
}
fn default_vtol() -> f64 {
    10.0
}

impl Site {
    /// Reads and validates a site file.
    pub fn load(path: &Path) -> Result<Site, SiteError> {
        let file = path.display().to_string();
        let src = std::fs::read_to_string(path).map_err(|e| SiteError {
            file: file.clone(),
            line: 0,
            field: "(file)".into(),
            message: format!("cannot read: {e}"),
        })?;
        Site::from_toml_str(&src, &file)
    }

    /// Parses and validates a site model; `file` is only used in error messages.
    pub fn from_toml_str(src: &str, file: &str) -> Result<Site, SiteError> {
        let source = Source::new(src, file);
        let raw: RawFile = toml::from_str(src).map_err(|e| {
            let line = e.span().map(|s| source.line(s.start)).unwrap_or(0);
            source.err(line, "(toml)".into(), e.message().trim().to_owned())
        })?;
        if raw.site.stale_after_ms <= 0 {
            return Err(source.err(
                1,
                "site.stale_after_ms".into(),
                "expected a positive number of milliseconds".into(),
            ));
        }
        let comps = components::expand(&source, raw.component, raw.generate)?;
        let index = components::check_ids(&source, &comps)?;
        let resolved = components::resolve(&source, &comps, &index)?;
        let components = components::topological(&source, resolved)?;
        let index: HashMap<String, usize> = components
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.clone(), i))
            .collect();
        let layout = layout::build(
            &source,
            raw.plan,
            raw.asset,
            raw.site.rack_units,
            &components,
            &index,
        )?;
        let mut children = vec![Vec::new(); components.len()];
        for (i, c) in components.iter().enumerate() {
            for (gi, g) in c.groups.iter().enumerate() {
                for &m in &g.members {
                    children[m].push((i, gi));
                }
            }
        }
        Ok(Site {
            name: raw.site.name,
            stale_after_ms: raw.site.stale_after_ms,
            voltage_tolerance: raw.site.voltage_tolerance_pct / 100.0,
            components,
            index,
            children,
            designed: Default::default(),
            layout,
        })
    }
}
