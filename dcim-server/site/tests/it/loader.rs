//! Site files with mistakes are rejected with the file, line, field and what was expected.

use dcim_site::*;

fn err(src: &str) -> SiteError {
    Site::from_toml_str(src, "site.toml").unwrap_err()
}

const HEAD: &str = "[site]\nname = \"t\"\n";

#[test]
fn a_minimal_site_loads_in_topological_order() {
    let src = format!(
        "{HEAD}
[[component]]
id = \"rack\"
kind = \"rack\"
upstream = [\"pdu\"]

[[component]]
id = \"pdu\"
kind = \"pdu\"
rating_kw = 10
points = [{{ device = \"pdu-1\", role = \"pdu.breaker_closed\", labels = {{ feed = \"A\" }} }}]
"
    );
    let site = Site::from_toml_str(&src, "site.toml").unwrap();
    assert_eq!(site.components[0].id, "pdu");
    assert_eq!(site.components[1].groups[0].members, vec![0]);
    assert_eq!(site.components[0].bindings[0].labels["feed"], "A");
    assert_eq!(site.components[1].line, 4);
    assert_eq!(site.devices(), vec!["pdu-1".to_string()]);
}

#[test]
fn toml_syntax_errors_carry_the_line() {
    let e = err(&format!("{HEAD}\n[[component]]\nid = \n"));
    assert_eq!(e.file, "site.toml");
    assert_eq!(e.line, 5);
    assert!(e.to_string().starts_with("site.toml:5: "), "{e}");
}

#[test]
fn unknown_kind_names_the_expected_values() {
    let e = err(&format!(
        "{HEAD}\n[[component]]\nid = \"x\"\nkind = \"toaster\"\n"
    ));
    assert_eq!(e.line, 6);
    assert!(e.message.contains("utility_feed"), "{e}");
}

#[test]
fn unknown_fields_are_rejected() {
    let e = err(&format!(
        "{HEAD}\n[[component]]\nid = \"x\"\nkind = \"pdu\"\nratng_kw = 3\n"
    ));
    assert!(e.message.contains("ratng_kw"), "{e}");
    assert_eq!(e.line, 7);
}

#[test]
fn unknown_upstream_names_component_field_and_line() {
    let e = err(&format!(
        "{HEAD}\n[[component]]\nid = \"x\"\nkind = \"pdu\"\nupstream = [\"ups-9\"]\n"
    ));
    assert_eq!(e.line, 4);
    assert_eq!(e.field, "component[x].upstream");
    assert!(e.message.contains("unknown component `ups-9`"), "{e}");
}

#[test]
fn need_larger_than_the_group_is_rejected() {
    let e = err(&format!(
        "{HEAD}
[[component]]
id = \"a\"
kind = \"chiller\"

[[component]]
id = \"l\"
kind = \"chilled_water_loop\"
upstream = [\"a\"]
need = 2
"
    ));
    assert_eq!(e.field, "component[l].need");
    assert_eq!(e.line, 8);
}

#[test]
fn unknown_role_is_rejected() {
    let e = err(&format!(
        "{HEAD}\n[[component]]\nid = \"a\"\nkind = \"chiller\"\ndevice = \"c\"\npoints = [\"chiller.runing\"]\n"
    ));
    assert_eq!(e.field, "component[a].points[0].role");
    assert!(e.message.contains("chiller.runing"));
}

#[test]
fn binding_without_device_is_rejected() {
    let e = err(&format!(
        "{HEAD}\n[[component]]\nid = \"a\"\nkind = \"chiller\"\npoints = [\"chiller.running\"]\n"
    ));
    assert_eq!(e.field, "component[a].points[0].device");
}

#[test]
fn cycles_and_duplicates_are_rejected() {
    let e = err(&format!(
        "{HEAD}
[[component]]
id = \"a\"
kind = \"pdu\"
upstream = [\"b\"]

[[component]]
id = \"b\"
kind = \"pdu\"
upstream = [\"a\"]
"
    ));
    assert!(e.message.contains("cycle"), "{e}");
    let e = err(&format!(
        "{HEAD}\n[[component]]\nid = \"a\"\nkind = \"pdu\"\n[[component]]\nid = \"a\"\nkind = \"pdu\"\n"
    ));
    assert!(e.message.contains("duplicate"), "{e}");
}

#[test]
fn mixed_subsystems_in_one_group_and_racks_as_suppliers_are_rejected() {
    let e = err(&format!(
        "{HEAD}\n[[component]]\nid = \"a\"\nkind = \"pdu\"\n[[component]]\nid = \"c\"\nkind = \"chiller\"\n[[component]]\nid = \"r\"\nkind = \"rack\"\nupstream = [\"a\", \"c\"]\n"
    ));
    assert!(e.message.contains("different subsystems"), "{e}");
    let e = err(&format!(
        "{HEAD}\n[[component]]\nid = \"r\"\nkind = \"rack\"\n[[component]]\nid = \"x\"\nkind = \"rack\"\nupstream = [\"r\"]\n"
    ));
    assert!(e.message.contains("is a rack"), "{e}");
}

#[test]
fn tank_needs_a_volume_and_design_must_be_known() {
    let e = err(&format!(
        "{HEAD}\n[[component]]\nid = \"t\"\nkind = \"buffer_tank\"\n"
    ));
    assert_eq!(e.field, "component[t].volume_m3");
    let e = err(&format!(
        "{HEAD}\n[[component]]\nid = \"t\"\nkind = \"pdu\"\ndesign = \"3N\"\n"
    ));
    assert!(e.message.contains("expected \"2N\""), "{e}");
}

#[test]
fn generators_expand_numbers_and_groups_and_report_their_line() {
    let src = format!(
        "{HEAD}
[[component]]
id = \"p-01\"
kind = \"pdu\"
[[component]]
id = \"p-02\"
kind = \"pdu\"

[[generate]]
count = 4
start = 7
digits = 3
per_group = 2
[generate.template]
id = \"r{{n}}\"
kind = \"rack\"
device = \"bms-r{{n}}\"
points = [\"it.power_kw\"]
upstream = [\"p-{{g}}\"]
"
    );
    let site = Site::from_toml_str(&src, "site.toml").unwrap();
    let ids: Vec<_> = site.components.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["p-01", "p-02", "r007", "r008", "r009", "r010"]);
    let r9 = site.get("r009").unwrap();
    assert_eq!(site.components[r9.groups[0].members[0]].id, "p-02");
    assert_eq!(r9.bindings[0].device, "bms-r009");
    assert_eq!(r9.line, 11);
    let bad = src.replace("p-{g}", "q-{g}");
    let e = err(&bad);
    assert_eq!((e.line, e.field.as_str()), (11, "component[r007].upstream"));
    let bad = src.replace("kind = \"rack\"", "kind = \"rak\"");
    let e = err(&bad);
    assert_eq!((e.line, e.field.as_str()), (11, "generate[0].template"));
}
