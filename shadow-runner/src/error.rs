//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong loading or running a model. Messages say what to do next.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file a model needs is not there (usually: the set-up script has not been run).
    #[error(
        "model file {path} is missing: run `bash scripts/models/fetch.sh` (or point the model's \
         path at a directory with config.json, tokenizer.json and model.safetensors)"
    )]
    MissingFile {
        /// The file that was looked for.
        path: PathBuf,
    },
    /// A file exists but could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file was read but its content is not what the runtime expects.
    #[error("{path}: {message}")]
    InvalidFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it and how to fix it.
        message: String,
    },
    /// The model registry (TOML) is invalid.
    #[error("invalid model registry: {0}")]
    Registry(String),
    /// Tokenisation failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The requested device cannot be used.
    #[error("device: {0}")]
    Device(String),
    /// Two sets of outputs cannot be compared (different lengths, missing heads, ...).
    #[error("cannot compare: {0}")]
    Incomparable(String),
    /// A tensor operation failed.
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    /// The `[shadow]` configuration or a command-line value is invalid.
    #[error("{0}")]
    Config(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] vigil_store::StoreError),
    /// A replay job or retraining request does not exist or is in the wrong state.
    #[error("{0}")]
    NotFound(String),
    /// Delivering a retraining request (webhook, Kafka) failed.
    #[error("delivery: {0}")]
    Delivery(String),
    /// Writing an output file failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Reads a whole file, turning "not found" into [`Error::MissingFile`].
pub(crate) fn read_file(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            Error::MissingFile {
                path: path.to_path_buf(),
            }
        } else {
            Error::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

/// Fails with [`Error::MissingFile`] unless `path` is an existing file.
pub(crate) fn require_file(path: &std::path::Path) -> Result<()> {
    if path.is_file() {
        Ok(())
    } else {
        Err(Error::MissingFile {
            path: path.to_path_buf(),
        })
    }
}
