//! Files the hub writes for itself: generated secrets, keys and certificates.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Creates `path` holding `contents`, readable and writable by its owner
/// only (mode 0600); see [`create`].
pub fn create_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    create(path, contents, 0o600)
}

/// Creates `path` holding `contents` with permissions `mode`, durably and
/// whole: the contents go to a temporary file of a unique name in the same
/// directory and are synced, the file is then linked at `path` (which fails
/// with `AlreadyExists` if something is there, so a file another process
/// created meanwhile is never replaced), and the directory is synced so the
/// new name survives a crash. A reader never sees a partly written file.
pub fn create(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let (dir, temporary) = beside(path);
    write_synced(&temporary, contents, mode)?;
    let linked = std::fs::hard_link(&temporary, path);
    let _ = std::fs::remove_file(&temporary);
    linked?;
    std::fs::File::open(dir)?.sync_all()
}

/// Writes `contents` to `path` readable and writable by its owner only,
/// replacing whatever is there, durably and whole: like [`create`] but
/// renamed over `path`, so a reader sees the old file or the new one.
pub fn replace_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let (dir, temporary) = beside(path);
    write_synced(&temporary, contents, 0o600)?;
    if let Err(e) = std::fs::rename(&temporary, path) {
        let _ = std::fs::remove_file(&temporary);
        return Err(e);
    }
    std::fs::File::open(dir)?.sync_all()
}

/// The directory of `path`, and a temporary name of its own in it.
fn beside(path: &Path) -> (&Path, PathBuf) {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let unique = format!("{}.{:016x}", std::process::id(), rand::random::<u64>());
    (dir, dir.join(format!(".{name}.{unique}.tmp")))
}

/// Writes a new file and syncs it; on failure, removes what it created.
fn write_synced(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    let written = file.write_all(contents).and_then(|()| file.sync_all());
    if written.is_err() {
        let _ = std::fs::remove_file(path);
    }
    written
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn creates_an_owner_only_file_and_never_replaces_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        create_private(&path, b"first").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let err = create_private(&path, b"second").unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn replaces_a_file_whole_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pair.pem");
        replace_private(&path, b"first").unwrap();
        replace_private(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
