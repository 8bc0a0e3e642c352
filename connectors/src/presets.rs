//! Mapping presets for real products' customer tables, built into the
//! binary: a connector's `mapping = "<name>"` picks one.

const PRESETS: &[(&str, &str)] = &[
    (
        "odoo_res_partner",
        include_str!("../presets/odoo_res_partner.toml"),
    ),
    (
        "suitecrm_contacts",
        include_str!("../presets/suitecrm_contacts.toml"),
    ),
];

/// The preset's mapping file, if `name` is one.
pub fn mapping(name: &str) -> Option<&'static str> {
    PRESETS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

pub fn names() -> Vec<&'static str> {
    PRESETS.iter().map(|(n, _)| *n).collect()
}
