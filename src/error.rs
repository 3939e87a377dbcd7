//! Typed errors of the library: every variant names the file (or source) it concerns and reads as one line.

use std::path::PathBuf;

/// Everything the library can fail with. `Display` is the one-line message shown to users.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input cannot be used: bad header, unsupported dtype, wrong size, bad flags for it.
    #[error("{path}: {msg}")]
    BadInput { path: PathBuf, msg: String },
    /// An operating-system error while opening, mapping or writing a file.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A request that does not fit the data (region outside the image, slice out of range, ...).
    #[error("{path}: {msg}")]
    Request { path: PathBuf, msg: String },
    /// The file shrank while memory-mapped: a read touched pages that no longer exist.
    #[error("{path}: the file shrank while it was being read (was it overwritten or truncated?)")]
    FileShrank { path: PathBuf },
    /// No GPU adapter, device creation failure, or a GPU-side error.
    #[error("GPU: {0}")]
    Gpu(String),
    /// A cache file (pyramid, index) is damaged, truncated or does not match its data file; it is
    /// deleted and rebuilt, never trusted.
    #[error("{path}: damaged cache file: {msg}")]
    Cache { path: PathBuf, msg: String },
    /// A background build was cancelled (its progress is kept for a later resume).
    #[error("cancelled")]
    Cancelled,
    /// Encoding or writing an output file failed.
    #[error("{path}: cannot write output: {msg}")]
    Output { path: PathBuf, msg: String },
}

impl Error {
    pub fn bad_input(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::BadInput { path: path.into(), msg: msg.into() }
    }
    pub fn request(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Request { path: path.into(), msg: msg.into() }
    }
    pub fn cache(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Cache { path: path.into(), msg: msg.into() }
    }
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
    /// True when the fault lies with the user's input or request (CLI exit code 2), not the machine.
    pub fn is_user_error(&self) -> bool {
        matches!(self, Error::BadInput { .. } | Error::Request { .. } | Error::Io { .. } | Error::FileShrank { .. })
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
