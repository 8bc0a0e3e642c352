//! The canonical model: which fields an entity has, their types, how values
//! are normalized, which fields are match keys and how conflicts are decided.
//! Declared in a TOML file (`schema/customer.toml` ships as the default), so
//! adding a field is a config change, not a code change.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;

/// The default entity, compiled in so `mdhub demo` works with no files.
pub const DEFAULT_CUSTOMER_MODEL: &str = include_str!("../customer.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelFile {
    entity: String,
    #[serde(rename = "field")]
    fields: Vec<FieldDef>,
}

/// One entity's model, fields kept in file order.
#[derive(Debug, Clone)]
pub struct Model {
    pub entity: String,
    pub fields: Vec<FieldDef>,
    index: BTreeMap<String, usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldDef {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: FieldType,
    /// Longest accepted string value, in characters.
    #[serde(default)]
    pub max_len: Option<usize>,
    /// Allowed values for `enum` fields (compared after normalization).
    #[serde(default)]
    pub values: Vec<String>,
    /// Lower-case `string` values while cleansing, for fields whose case
    /// carries no meaning (web addresses, codes typed at random case).
    #[serde(default)]
    pub casefold: bool,
    /// How a `date` field reads `03/01/2024`; `.` dates are always day first.
    #[serde(default)]
    pub slash_dates: Option<SlashDates>,
    /// For a `postcode` field: the `country` field whose value decides the
    /// postcode's shape.
    #[serde(default)]
    pub country_field: Option<String>,
    /// Exact match key: records with the same normalized value belong to the
    /// same golden record.
    #[serde(default)]
    pub match_key: bool,
    /// How a conflict on this field is decided unless the hub config says
    /// otherwise.
    #[serde(default)]
    pub survivorship: Survivorship,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    String,
    Email,
    Phone,
    Date,
    Country,
    /// A postal code, checked against the shape used in the country held by
    /// the field named in `country_field`.
    Postcode,
    Number,
    Bool,
    Enum,
}

/// Which number comes first in a date written with slashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlashDates {
    /// `03/01/2024` is March 1st (US exports).
    #[default]
    MonthFirst,
    /// `03/01/2024` is January 3rd (UK, FR, most of the world).
    DayFirst,
}

/// Deterministic rule that picks the golden value among concurrent
/// candidates (values written by systems that had not seen each other).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Survivorship {
    /// The candidate from the system ranked first in `source_priority`.
    SourcePriority,
    /// The latest `observed_at`; ties broken by system name.
    #[default]
    MostRecent,
    /// The longest non-empty value; ties by `observed_at`, then system name.
    MostComplete,
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read model file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("model file {path} is not valid: {message}")]
    Parse { path: String, message: String },
    #[error("model file {path} has {} problem(s):\n  - {}", .problems.len(), .problems.join("\n  - "))]
    Invalid { path: String, problems: Vec<String> },
}

impl Model {
    pub fn from_file(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// The built-in `customer` model.
    pub fn default_customer() -> Self {
        Self::parse(DEFAULT_CUSTOMER_MODEL, "schema/customer.toml")
            .expect("built-in model is valid")
    }

    /// Parses and checks a model; reports every problem at once.
    pub fn parse(text: &str, path: &str) -> Result<Self, ModelError> {
        let file: ModelFile = toml::from_str(text).map_err(|e| ModelError::Parse {
            path: path.to_string(),
            message: e.to_string(),
        })?;
        let mut problems = Vec::new();
        if !is_token(&file.entity) {
            problems.push(format!(
                "entity: {:?} must be lower-case letters, digits and '_'",
                file.entity
            ));
        }
        let mut seen = BTreeSet::new();
        for (i, f) in file.fields.iter().enumerate() {
            let at = format!("field[{i}] ({})", f.name);
            if !is_token(&f.name) {
                problems.push(format!(
                    "{at}.name: must be lower-case letters, digits and '_'"
                ));
            }
            if !seen.insert(f.name.clone()) {
                problems.push(format!("{at}.name: declared twice"));
            }
            if f.kind == FieldType::Enum && f.values.is_empty() {
                problems.push(format!(
                    "{at}.values: an enum field needs at least one value"
                ));
            }
            if f.kind != FieldType::Enum && !f.values.is_empty() {
                problems.push(format!("{at}.values: only enum fields take values"));
            }
            if f.casefold && f.kind != FieldType::String {
                problems.push(format!(
                    "{at}.casefold: only string fields take casefold (email is always lower-cased)"
                ));
            }
            if f.slash_dates.is_some() && f.kind != FieldType::Date {
                problems.push(format!(
                    "{at}.slash_dates: only date fields take slash_dates"
                ));
            }
            match (&f.country_field, f.kind == FieldType::Postcode) {
                (None, true) => problems.push(format!(
                    "{at}.country_field: a postcode field needs the name of its country field"
                )),
                (Some(_), false) => problems.push(format!(
                    "{at}.country_field: only postcode fields take country_field"
                )),
                (Some(c), true) => {
                    let target = file.fields.iter().find(|g| &g.name == c);
                    if target.map(|g| g.kind) != Some(FieldType::Country) {
                        problems.push(format!(
                            "{at}.country_field: {c:?} is not a field of type country"
                        ));
                    }
                }
                (None, false) => {}
            }
        }
        if file.fields.is_empty() {
            problems.push("field: a model needs at least one field".to_string());
        }
        if !problems.is_empty() {
            return Err(ModelError::Invalid {
                path: path.to_string(),
                problems,
            });
        }
        let index = file
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.clone(), i))
            .collect();
        Ok(Model {
            entity: file.entity,
            fields: file.fields,
            index,
        })
    }

    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.index.get(name).map(|&i| &self.fields[i])
    }

    pub fn match_keys(&self) -> impl Iterator<Item = &FieldDef> {
        self.fields.iter().filter(|f| f.match_key)
    }
}

/// Names used in subjects and keys: `[a-z0-9_]+`, at most 64 characters.
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_customer_model_parses() {
        let m = Model::default_customer();
        assert_eq!(m.entity, "customer");
        assert!(m.field("email").unwrap().match_key);
        assert_eq!(m.field("email").unwrap().kind, FieldType::Email);
        let zip = m.field("postal_code").unwrap();
        assert_eq!(zip.kind, FieldType::Postcode);
        assert_eq!(zip.country_field.as_deref(), Some("country"));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = r#"
            entity = "Customer"
            [[field]]
            name = "a"
            type = "enum"
            [[field]]
            name = "a"
            type = "string"
        "#;
        let err = Model::parse(text, "x.toml").unwrap_err().to_string();
        assert!(err.contains("3 problem"), "{err}");
        assert!(err.contains("entity"), "{err}");
        assert!(err.contains("declared twice"), "{err}");
        assert!(err.contains("needs at least one value"), "{err}");
    }

    #[test]
    fn cleansing_keys_are_checked() {
        let text = r#"
            entity = "c"
            [[field]]
            name = "zip"
            type = "postcode"
            [[field]]
            name = "zip2"
            type = "postcode"
            country_field = "city"
            [[field]]
            name = "city"
            type = "string"
            casefold = true
            country_field = "land"
            [[field]]
            name = "born"
            type = "email"
            casefold = true
            slash_dates = "day_first"
        "#;
        let err = Model::parse(text, "x.toml").unwrap_err().to_string();
        assert!(err.contains("5 problem"), "{err}");
        assert!(
            err.contains("(zip).country_field: a postcode field needs"),
            "{err}"
        );
        assert!(
            err.contains("(zip2).country_field: \"city\" is not a field of type country"),
            "{err}"
        );
        assert!(err.contains("(city).country_field: only postcode"), "{err}");
        assert!(err.contains("(born).casefold: only string"), "{err}");
        assert!(err.contains("(born).slash_dates: only date"), "{err}");
    }

    #[test]
    fn unknown_cleansing_values_are_named() {
        let text =
            "entity = \"c\"\n[[field]]\nname = \"d\"\ntype = \"date\"\nslash_dates = \"yes\"\n";
        let err = Model::parse(text, "x.toml").unwrap_err().to_string();
        assert!(
            err.contains("yes") && err.contains("month_first") && err.contains("day_first"),
            "{err}"
        );
        let text = "entity = \"c\"\n[[field]]\nname = \"z\"\ntype = \"zip\"\n";
        let err = Model::parse(text, "x.toml").unwrap_err().to_string();
        assert!(err.contains("zip") && err.contains("postcode"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let text = "entity = \"c\"\n[[field]]\nname = \"a\"\ntype = \"string\"\ncolour = 1\n";
        let err = Model::parse(text, "x.toml").unwrap_err().to_string();
        assert!(err.contains("colour"), "{err}");
    }
}
