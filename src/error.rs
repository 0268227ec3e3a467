//! One error type for the library; the CLI turns it into a message and an exit code.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    /// No usable adapter, or the chosen one lacks something docre needs.
    #[error("{0}")]
    NoAdapter(String),
    /// The device failed while running or waiting for work.
    #[error("GPU device error: {0}")]
    Device(String),
    /// A tensor larger than one storage binding of this adapter.
    #[error("tensor `{name}` needs {bytes} bytes, more than this adapter's storage-binding limit of {limit} bytes; use smaller shapes (fewer tokens, entities or a smaller batch) or an adapter with larger limits")]
    TooLarge { name: String, bytes: u64, limit: u64 },
    /// Wrong shapes or dtypes passed to a launcher.
    #[error("shape error in {op}: {msg}")]
    Shape { op: &'static str, msg: String },
    /// A WGSL module or pipeline failed to compile (a bug in docre, never user input).
    #[error("shader `{0}` failed to build: {1}")]
    Shader(String, String),
    /// Bad user input (files, arguments): exit code 2.
    #[error("{0}")]
    Input(String),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    /// `docre selftest` found a kernel that disagrees with the reference: exit code 1.
    #[error("{0}")]
    SelfTest(String),
    /// Training had to stop (a non-finite loss): exit code 1, the last checkpoint is kept.
    #[error("{0}")]
    Training(String),
}

pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn shape_err<T>(op: &'static str, msg: impl Into<String>) -> Result<T> {
    Err(Error::Shape { op, msg: msg.into() })
}
