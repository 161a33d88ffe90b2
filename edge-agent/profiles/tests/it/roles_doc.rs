//! The role vocabulary in `device-profiles/README.md` is generated from `dcim_points::ROLES`.
//!
//! Hazard: a technician reads the README to pick roles; a table that lags the code sends them
//! to `custom.*` (which the redundancy and fire logic ignore) or to a role that no longer
//! exists (a profile the loader then refuses on site).

use std::path::Path;

const BEGIN: &str = "<!-- roles:begin -->\n";
const END: &str = "<!-- roles:end -->";

#[test]
fn the_readme_vocabulary_matches_roles_rs() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../device-profiles/README.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let start = text.find(BEGIN).expect("roles:begin marker") + BEGIN.len();
    let end = text.find(END).expect("roles:end marker");
    let want = dcim_points::vocabulary_markdown();
    if text[start..end] != want {
        if std::env::var("DCIM_UPDATE_ROLES").as_deref() == Ok("1") {
            let updated = format!("{}{want}{}", &text[..start], &text[end..]);
            std::fs::write(&path, updated).unwrap();
            return;
        }
        panic!(
            "device-profiles/README.md lists other roles than edge-agent/points/src/roles.rs; \
             run `DCIM_UPDATE_ROLES=1 cargo test -p dcim-profiles --test it -- roles_doc::`"
        );
    }
    for def in dcim_points::ROLES {
        assert!(
            text.contains(&format!("| `{}` |", def.name)),
            "{}",
            def.name
        );
    }
}
