//! Opening a file of the state folder (the lock, a journal): a regular file
//! with one link, nothing else. A symbolic or hard link would let the open
//! truncate or append to a file elsewhere, and a FIFO would block the run;
//! so links are not followed, a FIFO is opened without blocking, and what
//! was opened is checked on the handle itself.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// Opens `path` with `options` and checks what it got.
pub fn open(path: &Path, options: &mut OpenOptions) -> io::Result<File> {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(io::Error::other(
            "it is a symbolic link; refusing to follow it (remove it or choose another --state)",
        ));
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(options, libc::O_NOFOLLOW | libc::O_NONBLOCK);
    let file = options.open(path)?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(io::Error::other(
            "it is not a regular file (a FIFO, a device or a folder); refusing to use it",
        ));
    }
    #[cfg(unix)]
    if std::os::unix::fs::MetadataExt::nlink(&meta) > 1 {
        return Err(io::Error::other(
            "it has other hard links, so writing it would change another file; refusing to use it",
        ));
    }
    Ok(file)
}
