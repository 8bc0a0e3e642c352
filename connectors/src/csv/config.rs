//! The `[csv]` section of a connector's configuration: where the exports
//! arrive, where they go once imported, where write-back files are put, and
//! how the files look.
//!
//! ```toml
//! [csv]
//! inbox = "/srv/exports/in"
//! done = "/srv/exports/done"
//! outbox = "/srv/exports/updates"
//! layout = "salesforce_contacts"
//! modified_column = "LastModifiedDate"
//! poll_interval = 5
//! ```
//!
//! `layout` is a preset name (`salesforce_contacts`), a preset with its
//! settings (`{ preset = "hubspot_contacts", utc_offset = "+01:00" }`,
//! `{ preset = "generic", key_column = "Kunden-Nr." }`) or a whole layout
//! table (`[csv.layout]` with `key_column`, `delimiter`, `columns`, `dates`,
//! `utc_offset`, `aliases`, `deleted_column`, as [`CsvLayout`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::layout::{parse_offset, CsvLayout, DateFormat};

/// The CSV connector's configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvConfig {
    /// The drop folder the system's exports arrive in. Files are imported
    /// in name order; names starting with `.` or ending in `.tmp` or
    /// `.part` are skipped, so an exporter writes under such a name and
    /// renames when done.
    pub inbox: PathBuf,
    /// Imported files are moved here (`<name>.rejected` for a file that
    /// could not be read at all).
    pub done: PathBuf,
    /// Write-back files for the system's importer (one per applied batch
    /// and kind: `*-update.csv`, `*-insert.csv`, `*-delete.csv`), written
    /// under a hidden temporary name and renamed. The connector keeps its
    /// own state in the hidden `.mdhub-state` folder inside.
    pub outbox: PathBuf,
    /// How the exports look: a preset name, a preset with its settings, or
    /// a whole layout table.
    pub layout: LayoutConfig,
    /// A date-time column of the layout with the row's last change time
    /// (Salesforce `LastModifiedDate`), sent as the change's time. Without
    /// it, or where a row leaves it empty, the file's modification time.
    #[serde(default)]
    pub modified_column: Option<String>,
    /// Seconds between two looks into an empty inbox (fractions allowed).
    /// Default 5.
    #[serde(default = "default_poll_interval")]
    pub poll_interval: f64,
}

fn default_poll_interval() -> f64 {
    5.0
}

/// The `layout` key: a preset or a whole layout.
#[derive(Debug, Clone, PartialEq)]
pub enum LayoutConfig {
    Preset(PresetLayout),
    Inline(CsvLayout),
}

/// A preset with the settings it needs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresetLayout {
    pub preset: Preset,
    /// `hubspot_contacts`: the account's offset (`+01:00`); its date-times
    /// carry no zone.
    #[serde(default)]
    pub utc_offset: Option<String>,
    /// `generic`: the column that identifies a record.
    #[serde(default)]
    pub key_column: Option<String>,
}

/// The exports of real products the connector knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// [`CsvLayout::salesforce_contacts`].
    SalesforceContacts,
    /// [`CsvLayout::hubspot_contacts`]; needs `utc_offset`.
    HubspotContacts,
    /// [`CsvLayout::generic`]; needs `key_column`.
    Generic,
}

impl<'de> Deserialize<'de> for LayoutConfig {
    /// Read as a JSON value first and told apart by shape, so that each
    /// form reports its own mistakes (an untagged enum would only say that
    /// no variant matched).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = Value::deserialize(d)?;
        let parsed = match &value {
            Value::String(_) => serde_json::from_value(value).map(|preset| {
                LayoutConfig::Preset(PresetLayout {
                    preset,
                    utc_offset: None,
                    key_column: None,
                })
            }),
            Value::Object(table) if table.contains_key("preset") => {
                serde_json::from_value(value).map(LayoutConfig::Preset)
            }
            Value::Object(_) => serde_json::from_value(value).map(LayoutConfig::Inline),
            _ => return Err(D::Error::custom(
                "layout: a preset name or a table (a preset with its settings, or a whole layout)",
            )),
        };
        parsed.map_err(|e| D::Error::custom(format!("layout: {e}")))
    }
}

/// A configuration that was checked: what the source and the sink use.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub inbox: PathBuf,
    pub done: PathBuf,
    pub outbox: PathBuf,
    pub layout: CsvLayout,
    pub modified_column: Option<String>,
    pub poll_interval: Duration,
}

impl Settings {
    /// Where the connector keeps what its sink needs between runs.
    pub fn state_dir(&self) -> PathBuf {
        self.outbox.join(".mdhub-state")
    }
}

impl CsvConfig {
    /// The layout this configuration names, before validation.
    pub fn resolve_layout(&self) -> Result<CsvLayout, String> {
        let preset = match &self.layout {
            LayoutConfig::Inline(layout) => return Ok(layout.clone()),
            LayoutConfig::Preset(p) => p,
        };
        let unused = |key: &str| format!("layout: {key} is not a setting of this preset");
        match preset.preset {
            Preset::SalesforceContacts => {
                if preset.utc_offset.is_some() {
                    return Err(unused("utc_offset"));
                }
                if preset.key_column.is_some() {
                    return Err(unused("key_column"));
                }
                Ok(CsvLayout::salesforce_contacts())
            }
            Preset::HubspotContacts => {
                if preset.key_column.is_some() {
                    return Err(unused("key_column"));
                }
                // Required: guessing UTC would shift every date-time.
                let text = preset.utc_offset.as_deref().ok_or(
                    "layout: hubspot_contacts needs utc_offset, the account's offset like +01:00",
                )?;
                let offset = parse_offset(text).ok_or_else(|| {
                    format!("layout: utc_offset {text:?} is not an offset like +01:00")
                })?;
                Ok(CsvLayout::hubspot_contacts(offset))
            }
            Preset::Generic => {
                if preset.utc_offset.is_some() {
                    return Err(unused("utc_offset"));
                }
                let key = preset
                    .key_column
                    .as_deref()
                    .ok_or("layout: generic needs key_column")?;
                Ok(CsvLayout::generic(key))
            }
        }
    }

    /// Checks everything that can be checked before a file is read: the
    /// layout, the modified column (any other than a date-time would give
    /// every change the file's time without a word), the interval, and
    /// three distinct folders (an outbox that is the inbox would import the
    /// connector's own write-back files).
    pub(crate) fn check(&self) -> Result<Settings, String> {
        let layout = self.resolve_layout()?;
        layout.validate().map_err(|errors| {
            let texts: Vec<String> = errors.iter().map(ToString::to_string).collect();
            format!("layout: {}", texts.join("; "))
        })?;
        if let Some(column) = &self.modified_column {
            let date_time = matches!(
                layout.dates.get(column),
                Some(DateFormat::IsoDateTime | DateFormat::LocalDateTime { .. })
            );
            if !date_time {
                return Err(format!(
                    "modified_column {column:?} is not a date-time column of the layout \
                     (an iso_date_time or local_date_time in its dates)"
                ));
            }
        }
        let poll_interval = Duration::try_from_secs_f64(self.poll_interval)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or("poll_interval: a positive number of seconds")?;
        let folders = [
            ("inbox", &self.inbox),
            ("done", &self.done),
            ("outbox", &self.outbox),
        ];
        for (i, (a, pa)) in folders.iter().enumerate() {
            for (b, pb) in &folders[i + 1..] {
                if same_folder(pa, pb) {
                    return Err(format!("{a} and {b} must be different folders"));
                }
            }
        }
        Ok(Settings {
            inbox: self.inbox.clone(),
            done: self.done.clone(),
            outbox: self.outbox.clone(),
            layout,
            modified_column: self.modified_column.clone(),
            poll_interval,
        })
    }
}

/// Two configured paths name the same folder (compared as written, and as
/// resolved when both exist).
fn same_folder(a: &Path, b: &Path) -> bool {
    if a.components().eq(b.components()) {
        return true;
    }
    matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(layout: &str) -> Result<CsvConfig, String> {
        let text = format!(
            "poll_interval = 0.5\ninbox = \"in\"\ndone = \"done\"\noutbox = \"out\"\n{layout}\n"
        );
        toml::from_str(&text).map_err(|e| e.to_string())
    }

    fn layout(text: &str) -> Result<CsvLayout, String> {
        parse(text)?.check().map(|s| s.layout)
    }

    #[test]
    fn every_form_of_layout_names_its_layout() {
        assert_eq!(
            layout("layout = \"salesforce_contacts\""),
            Ok(CsvLayout::salesforce_contacts())
        );
        assert_eq!(
            layout("layout = { preset = \"hubspot_contacts\", utc_offset = \"+01:00\" }"),
            Ok(CsvLayout::hubspot_contacts(time::macros::offset!(+1)))
        );
        assert_eq!(
            layout("layout = { preset = \"generic\", key_column = \"Kunden-Nr.\" }"),
            Ok(CsvLayout::generic("Kunden-Nr."))
        );
        let inline = layout(
            "[layout]\nkey_column = \"Nr\"\ndelimiter = \";\"\n\
             dates = { Geboren = { kind = \"date\", pattern = \"[day].[month].[year]\" } }",
        )
        .expect("an inline layout");
        assert_eq!((inline.key_column.as_str(), inline.delimiter), ("Nr", ';'));
        assert!(inline.dates.contains_key("Geboren"));
    }

    #[test]
    fn mistakes_are_named() {
        let err = |text: &str| match layout(text) {
            Ok(l) => panic!("{text} was accepted as {l:?}"),
            Err(e) => e,
        };
        assert!(err("layout = \"oracle\"").contains("unknown variant"));
        assert!(err("layout = { preset = \"hubspot_contacts\" }").contains("utc_offset"));
        assert!(err("layout = { preset = \"generic\" }").contains("key_column"));
        assert!(
            err("layout = { preset = \"generic\", key_column = \"Id\", delimiter = \";\" }")
                .contains("delimiter")
        );
        assert!(
            err("layout = { preset = \"salesforce_contacts\", key_column = \"Id\" }")
                .contains("key_column")
        );
        assert!(err("[layout]\nkey_column = \"Id\"\nkeycolumn = \"x\"").contains("keycolumn"));
        assert!(err("layout = 3").contains("preset name"));
        let mut c = parse("layout = \"salesforce_contacts\"").expect("parses");
        c.modified_column = Some("Birthdate".into());
        assert!(c.check().unwrap_err().contains("modified_column"));
        c.modified_column = Some("LastModifiedDate".into());
        assert!(c.check().is_ok());
        c.poll_interval = 0.0;
        assert!(c.check().unwrap_err().contains("poll_interval"));
        c.poll_interval = 1.0;
        c.outbox = PathBuf::from("in");
        assert!(c.check().unwrap_err().contains("inbox and outbox"));
        assert!(toml::from_str::<CsvConfig>("inbox = \"a\"\nlayout = \"generic\"").is_err());
    }
}
