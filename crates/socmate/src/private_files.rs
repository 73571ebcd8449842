//! Files in the data dir hold password and session hashes, incidents, the audit log and key
//! material, so every file SoCMate creates there is readable by its owner only (0600) whatever
//! the umask and the directory's mode — an operator-made 0755 directory included. SQLite
//! creates its `-wal` and `-shm` files with the database file's mode, so creating that file
//! 0600 first covers them; [`restrict`] mends files an older version left wider.

use std::io::Write as _;
use std::path::Path;

fn owner_only() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options
}

/// Creates `path` (0600) with `contents` and a newline; fails if it exists.
pub fn write_new(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut file = owner_only().create_new(true).open(path)?;
    file.write_all(contents)?;
    file.write_all(b"\n")?;
    file.sync_all()
}

/// Replaces the contents of `path`, creating it 0600 (and narrowing an existing one to 0600).
pub fn write(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut file = owner_only().create(true).truncate(true).open(path)?;
    restrict(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Creates an empty `path` (0600) unless it exists, so that what opens it later inherits that.
pub fn create_empty(path: &Path) -> std::io::Result<()> {
    owner_only().create(true).truncate(false).open(path)?;
    restrict(path)
}

/// Narrows `path` to 0600 if it exists.
pub fn restrict(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        match std::fs::metadata(path) {
            Ok(meta) if meta.permissions().mode() & 0o077 != 0 => {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            }
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}

/// Whether users other than the owner may read `path` (a key file an operator provided).
pub fn readable_by_others(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o044 != 0)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}
