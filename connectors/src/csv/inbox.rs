//! The drop folders: which export to import next, its bytes and content
//! hash, and moving it to `done` once imported.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// One export file, read whole.
pub(crate) struct ExportFile {
    pub name: String,
    pub bytes: Vec<u8>,
    /// Hex SHA-256 of the bytes: with the name, what identifies the file
    /// when it is read again after a crash.
    pub sha256: String,
    /// The file's modification time: when the system wrote the export.
    pub modified: OffsetDateTime,
}

/// Hex SHA-256 of some bytes.
pub(crate) fn sha256(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// Whether a file name is one an exporter is still writing (or not an
/// export at all): hidden files and `.tmp`/`.part` files are left alone.
fn in_progress(name: &str) -> bool {
    name.starts_with('.') || name.ends_with(".tmp") || name.ends_with(".part")
}

/// The names of the files ready in `inbox`, in name order. A name that is
/// not valid UTF-8 is skipped with a warning: it cannot be named in a cursor.
pub(crate) fn ready(inbox: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(inbox)? {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        match entry.file_name().into_string() {
            Ok(name) if !in_progress(&name) => names.push(name),
            Ok(_) => {}
            Err(raw) => tracing::warn!(
                "skipping {} in the inbox: its name is not valid UTF-8",
                Path::new(&raw).display()
            ),
        }
    }
    names.sort();
    Ok(names)
}

/// Reads one file of the inbox; `None` when it is gone (moved away by
/// someone else meanwhile).
pub(crate) fn read(inbox: &Path, name: &str) -> io::Result<Option<ExportFile>> {
    let path = inbox.join(name);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let modified = fs::metadata(&path)?.modified()?.into();
    Ok(Some(ExportFile {
        name: name.to_string(),
        sha256: sha256(&bytes),
        bytes,
        modified,
    }))
}

/// Moves `name` from `inbox` to `done` as `target` (the same name, or with
/// `.rejected`), never over an earlier file of that name: a system that
/// writes `contacts.csv` every night keeps every night's file, the later
/// ones as `contacts.csv.1`, `.2`, …. A file already gone is not an error.
pub(crate) fn move_to_done(inbox: &Path, name: &str, done: &Path, target: &str) -> io::Result<()> {
    let from = inbox.join(name);
    if !from.exists() {
        return Ok(());
    }
    fs::create_dir_all(done)?;
    let mut to = done.join(target);
    let mut n = 0u32;
    while to.exists() {
        n += 1;
        to = done.join(format!("{target}.{n}"));
    }
    fs::rename(&from, &to)
}

/// Creates a folder the connector needs.
pub(crate) fn ensure_dir(dir: &Path) -> io::Result<PathBuf> {
    fs::create_dir_all(dir)?;
    Ok(dir.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_in_progress_are_skipped_and_the_rest_come_in_name_order() {
        let dir = tempfile::tempdir().expect("temp dir");
        for name in ["b.csv", "a.csv", ".c.csv", "d.csv.tmp", "e.part"] {
            fs::write(dir.path().join(name), "x").expect("write");
        }
        fs::create_dir(dir.path().join("sub")).expect("dir");
        assert_eq!(ready(dir.path()).expect("list"), ["a.csv", "b.csv"]);
    }

    #[test]
    fn a_name_taken_in_done_is_kept_and_the_new_file_numbered() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (inbox, done) = (dir.path().join("in"), dir.path().join("done"));
        fs::create_dir(&inbox).expect("inbox");
        for night in ["1", "2"] {
            fs::write(inbox.join("c.csv"), night).expect("write");
            move_to_done(&inbox, "c.csv", &done, "c.csv").expect("move");
        }
        assert_eq!(fs::read_to_string(done.join("c.csv")).expect("first"), "1");
        assert_eq!(
            fs::read_to_string(done.join("c.csv.1")).expect("second"),
            "2"
        );
        move_to_done(&inbox, "c.csv", &done, "c.csv").expect("a file already gone");
        assert!(read(&inbox, "c.csv").expect("read").is_none());
    }
}
