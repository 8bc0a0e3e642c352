//! Echo suppression by content: what the connector last wrote to each
//! record, so that the capture of its own write is dropped, and the golden
//! version it wrote, sent as `base` with the record's next captured change.
//!
//! The capture of a write is recognized by the canonical image of the
//! whole record: equal to the image the system returned when the write
//! committed means nothing else changed. A real edit that lands between the
//! write and its capture makes the images differ, so it is published, with
//! the written version as its `base`.
//!
//! Held in memory: after a restart the first echo of a write made before it
//! goes to the hub, which recognizes it by its content against the golden
//! record and changes nothing.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};

use serde_json::Value;

/// Canonical fields of one record.
pub type Fields = BTreeMap<String, Value>;

#[derive(Debug, Clone)]
struct Written {
    /// Hash of the canonical image after the write; `None` once a captured
    /// change differed from it (a later identical capture is a real edit).
    image: Option<u64>,
    retired: bool,
    version: Vec<String>,
}

/// What to do with a captured change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The system returned what the connector wrote: drop it.
    Echo,
    /// A change to publish, with the version the connector last wrote to
    /// the record as its `base` (if it wrote one).
    Publish { base: Option<Vec<String>> },
}

#[derive(Debug, Default)]
pub struct EchoStore {
    records: HashMap<String, Written>,
}

fn hash(fields: &Fields) -> u64 {
    let mut h = DefaultHasher::new();
    // BTreeMap: keys in order; serde_json's output of a Value is stable.
    for (k, v) in fields {
        k.hash(&mut h);
        v.to_string().hash(&mut h);
    }
    h.finish()
}

impl EchoStore {
    /// The connector wrote `version` to the record, which now reads `image`.
    pub fn wrote(&mut self, record_id: &str, image: &Fields, version: &[String]) {
        self.records.insert(
            record_id.to_string(),
            Written {
                image: Some(hash(image)),
                retired: false,
                version: version.to_vec(),
            },
        );
    }

    /// The connector deleted or archived the record for `version`.
    pub fn retired(&mut self, record_id: &str, version: &[String]) {
        self.records.insert(
            record_id.to_string(),
            Written {
                image: None,
                retired: true,
                version: version.to_vec(),
            },
        );
    }

    /// The connector received `version` for the record without writing
    /// anything (the update carried only fields it does not write): its
    /// next captured change was made with that version in view.
    pub fn saw_version(&mut self, record_id: &str, version: &[String]) {
        match self.records.get_mut(record_id) {
            Some(w) => w.version = version.to_vec(),
            None => {
                self.records.insert(
                    record_id.to_string(),
                    Written {
                        image: None,
                        retired: false,
                        version: version.to_vec(),
                    },
                );
            }
        }
    }

    /// A captured change of the record: its canonical image, `None` for a
    /// delete.
    pub fn captured(&mut self, record_id: &str, image: Option<&Fields>) -> Verdict {
        let Some(w) = self.records.get_mut(record_id) else {
            return Verdict::Publish { base: None };
        };
        let echo = match image {
            None => w.retired,
            Some(fields) => w.image == Some(hash(fields)),
        };
        if echo {
            return Verdict::Echo;
        }
        // From now on the record holds someone else's edit: the same image
        // captured again later is not an echo.
        w.image = None;
        w.retired = false;
        Verdict::Publish {
            base: Some(w.version.clone()),
        }
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(pairs: &[(&str, Value)]) -> Fields {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn the_capture_of_a_write_is_an_echo_and_a_real_edit_carries_the_base() {
        let mut store = EchoStore::default();
        let v = vec!["aa".to_string()];
        let written = fields(&[("city", json!("Berlin")), ("phone", json!("+4930"))]);
        store.wrote("r/1", &written, &v);
        assert_eq!(store.captured("r/1", Some(&written)), Verdict::Echo);
        let edited = fields(&[("city", json!("Potsdam")), ("phone", json!("+4930"))]);
        assert_eq!(
            store.captured("r/1", Some(&edited)),
            Verdict::Publish {
                base: Some(v.clone())
            }
        );
        // Reverting to the written values is a real edit now.
        assert_eq!(
            store.captured("r/1", Some(&written)),
            Verdict::Publish { base: Some(v) }
        );
        assert_eq!(
            store.captured("other", Some(&written)),
            Verdict::Publish { base: None }
        );
    }

    #[test]
    fn a_delete_after_a_retire_is_an_echo_and_after_a_write_it_is_not() {
        let mut store = EchoStore::default();
        let v = vec!["bb".to_string()];
        store.retired("r", &v);
        assert_eq!(store.captured("r", None), Verdict::Echo);
        store.wrote("s", &Fields::new(), &v);
        assert_eq!(
            store.captured("s", None),
            Verdict::Publish { base: Some(v) }
        );
    }

    #[test]
    fn values_of_other_types_do_not_hash_alike() {
        let mut store = EchoStore::default();
        store.wrote("r", &fields(&[("zip", json!("10115"))]), &[]);
        assert_ne!(
            store.captured("r", Some(&fields(&[("zip", json!(10115))]))),
            Verdict::Echo
        );
    }
}
