//! Write-back files: CSV in the layout's delimiter, a header line, one row
//! per record, written under a hidden temporary name, synced and renamed,
//! so that the system's importer never sees half a file. The names sort in
//! the order the files must be imported.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use time::macros::format_description;
use time::OffsetDateTime;

/// What a file asks the system's importer to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Set the columns of the header on the records with these keys (a
    /// Data Loader update; an empty cell sets the column empty).
    Update,
    /// Create records with these keys and columns.
    Insert,
    /// Delete the records with these keys.
    Delete,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Update => "update",
            Kind::Insert => "insert",
            Kind::Delete => "delete",
        }
    }
}

/// One file to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutFile {
    pub kind: Kind,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// The part of the names of one batch's files that orders batches: UTC
/// time to the microsecond, always later than `last` (two batches in one
/// microsecond, or a clock set back).
pub(crate) fn batch_stamp(last: Option<OffsetDateTime>) -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    match last {
        Some(l) if now <= l => l + time::Duration::microseconds(1),
        _ => now,
    }
}

fn stamp_text(at: OffsetDateTime) -> String {
    let format =
        format_description!("[year][month][day]T[hour][minute][second][subsecond digits:6]Z");
    // Every UTC time of this era formats; the fallback keeps names unique.
    at.format(format)
        .unwrap_or_else(|_| at.unix_timestamp_nanos().to_string())
}

/// Writes the files of one batch into `dir`, in order. On a failure it
/// removes what it wrote, renamed files too, so the runner's retry of the
/// batch does not leave the system a second copy of an insert (the
/// importer could only have seen such a file for the instant between two
/// renames).
pub(crate) fn write_batch(
    dir: &Path,
    delimiter: u8,
    stamp: OffsetDateTime,
    files: &[OutFile],
) -> io::Result<Vec<PathBuf>> {
    fs::create_dir_all(dir)?;
    let stamp = stamp_text(stamp);
    let mut staged = Vec::with_capacity(files.len());
    let mut renamed = Vec::with_capacity(files.len());
    let result = (|| {
        for (i, file) in files.iter().enumerate() {
            let name = format!("mdhub-{stamp}-{i:03}-{}.csv", file.kind.name());
            let tmp = dir.join(format!(".{name}.tmp"));
            staged.push((tmp.clone(), dir.join(name)));
            write_file(&tmp, delimiter, file)?;
        }
        for (tmp, path) in &staged {
            fs::rename(tmp, path)?;
            renamed.push(path.clone());
        }
        sync_dir(dir)
    })();
    if let Err(e) = result {
        for path in staged.iter().map(|(tmp, _)| tmp).chain(&renamed) {
            let _ = fs::remove_file(path);
        }
        return Err(e);
    }
    Ok(renamed)
}

fn write_file(path: &Path, delimiter: u8, file: &OutFile) -> io::Result<()> {
    let out = File::create(path)?;
    let mut writer = csv::WriterBuilder::new()
        .delimiter(delimiter)
        .from_writer(out);
    writer.write_record(&file.header)?;
    for row in &file.rows {
        writer.write_record(row)?;
    }
    let mut out = writer.into_inner().map_err(|e| e.into_error())?;
    out.flush()?;
    out.sync_all()
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_of_a_batch_are_named_in_order_and_quoted_as_csv() {
        let dir = tempfile::tempdir().expect("temp dir");
        let files = [
            OutFile {
                kind: Kind::Update,
                header: vec!["Id".into(), "City".into()],
                rows: vec![vec!["a;\"1\"".into(), "Köln\nSüd".into()]],
            },
            OutFile {
                kind: Kind::Delete,
                header: vec!["Id".into()],
                rows: vec![vec!["b".into()]],
            },
        ];
        let first = batch_stamp(None);
        let paths = write_batch(dir.path(), b';', first, &files).expect("written");
        let names: Vec<String> = fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
            .collect();
        assert_eq!(names.len(), 2, "no temporary file left: {names:?}");
        assert!(paths[0].to_string_lossy().ends_with("-000-update.csv"));
        assert!(paths[1].to_string_lossy().ends_with("-001-delete.csv"));
        assert_eq!(
            fs::read_to_string(&paths[0]).expect("read"),
            "Id;City\n\"a;\"\"1\"\"\";\"Köln\nSüd\"\n"
        );
        let second = batch_stamp(Some(first + time::Duration::hours(1)));
        assert!(
            second > first,
            "a clock set back still names later files later"
        );
        assert!(stamp_text(second) > stamp_text(first));
    }

    #[test]
    fn a_failed_batch_leaves_no_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = OutFile {
            kind: Kind::Insert,
            header: vec!["Id".into()],
            rows: vec![vec!["x".into()]],
        };
        // The second file's name is taken by a directory: its rename fails.
        let stamp = batch_stamp(None);
        let blocked = dir
            .path()
            .join(format!("mdhub-{}-001-insert.csv", stamp_text(stamp)));
        fs::create_dir(&blocked).expect("blocker");
        let err = write_batch(dir.path(), b',', stamp, &[file.clone(), file]);
        assert!(err.is_err());
        let left: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").path())
            .filter(|p| *p != blocked)
            .collect();
        assert!(left.is_empty(), "files left: {left:?}");
    }
}
