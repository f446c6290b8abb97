use std::io;
use std::path::PathBuf;

/// Storage failures. `Display` is sent to API clients as is, so messages name the volume or file concerned and
/// never include internal detail beyond the OS error.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A vid or pool directory that could name something outside the pool.
    #[error("Refusing unsafe volume path: {0}")]
    InvalidPath(String),
    /// A directory or file in a pool that could let someone else redirect what the daemon writes or deletes: a
    /// symlink, or a directory others may write to. Nothing was done through it.
    #[error("Refusing to use {path}: {why}")]
    UnsafePath { path: PathBuf, why: &'static str },
    #[error("Volume {0} already exists")]
    AlreadyExists(PathBuf),
    #[error("Missing image file: {0}")]
    MissingImage(PathBuf),
    /// A `snap_on_start` volume was started without the volume it is a snapshot of.
    #[error("Snapshot volume {0} has no origin to start from")]
    NoOrigin(String),
    /// `qemu-img` ran but could not create a snapshot's overlay; `detail` is its error output (or exit status).
    #[error("Cannot create overlay {path}: {detail}")]
    Overlay { path: PathBuf, detail: String },
    #[error("Missing kernel: {0}")]
    MissingKernel(PathBuf),
    #[error(
        "For your own safety, shrinking of {volume} is disabled ({current} > {requested}). If you really know what \
         you are doing, use 'truncate' on {path} manually."
    )]
    ShrinkRefused { volume: String, current: u64, requested: u64, path: PathBuf },
    #[error("Can not resize readonly volume {0}")]
    ReadOnly(String),
    #[error("Revision {revision} of volume {vid} not found")]
    RevisionNotFound { vid: String, revision: String },
    #[error("Import into volume {0} is already in progress")]
    ImportInProgress(String),
    #[error("No import in progress for volume {0}")]
    NoImportInProgress(String),
    /// The driver or the volume's kind does not allow the operation; the message says which.
    #[error("{0}")]
    Unsupported(String),
    #[error("Pool directory {path} is not usable: {source}")]
    PoolNotUsable { path: PathBuf, source: io::Error },
    /// A preallocated image does not fit in what its file system has left; nothing was allocated for it.
    #[error("Not enough space for preallocated volume {vid}: it needs {needed} bytes, {available} are free")]
    NoSpace { vid: String, needed: u64, available: u64 },
    #[error("Cannot {action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: io::Error },
}

impl StorageError {
    /// Adapter for `map_err`: `.map_err(StorageError::io("create", &path))`.
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> StorageError {
        let path = path.into();
        move |source| StorageError::Io { action, path, source }
    }
}
