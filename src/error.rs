//! Typed errors of the library: every variant names the file (or source) it concerns and reads as one line.

use std::path::PathBuf;

/// Everything the library can fail with. `Display` is the one-line message shown to users.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input cannot be used: bad header, unsupported dtype, wrong size, bad flags for it.
    #[error("{}: {msg}", quoted(path))]
    BadInput { path: PathBuf, msg: String },
    /// An operating-system error while opening, mapping or writing a file.
    #[error("{}: {source}", quoted(path))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A request that does not fit the data (region outside the image, slice out of range, ...).
    #[error("{}: {msg}", quoted(path))]
    Request { path: PathBuf, msg: String },
    /// The file shrank while memory-mapped: a read touched pages that no longer exist.
    #[error("{}: the file shrank while it was being read (was it overwritten or truncated?)", quoted(path))]
    FileShrank { path: PathBuf },
    /// No GPU adapter, device creation failure, or a GPU-side error.
    #[error("GPU: {0}")]
    Gpu(String),
    /// A cache file (pyramid, index) is damaged, truncated or does not match its data file; it is
    /// deleted and rebuilt, never trusted.
    #[error("{}: damaged cache file: {msg}", quoted(path))]
    Cache { path: PathBuf, msg: String },
    /// A background build was cancelled (its progress is kept for a later resume).
    #[error("cancelled")]
    Cancelled,
    /// Encoding or writing an output file failed.
    #[error("{}: cannot write output: {msg}", quoted(path))]
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
    /// True when the fault lies with the user's input or request (CLI exit code 2), not the machine:
    /// an output that cannot be written (a full disk, a missing directory) is one too.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            Error::BadInput { .. }
                | Error::Request { .. }
                | Error::Io { .. }
                | Error::FileShrank { .. }
                | Error::Output { .. }
        )
    }
}

/// A path as error messages show it: as it is, or quoted and escaped (Rust's `{:?}`: `"a\nb"`,
/// `"bad\xFF"`) when it holds control characters (a newline would break the one-line message) or
/// is not UTF-8, so every message stays one line and names the file unambiguously.
pub fn quoted(path: &std::path::Path) -> String {
    match path.to_str() {
        Some(s) if !s.chars().any(char::is_control) => s.to_string(),
        _ => format!("{path:?}"),
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
