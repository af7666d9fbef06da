use thiserror::Error;

/// Errors from the statistics in this crate.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum AnalyzerError {
    #[error("a sample is empty after dropping missing and infinite values; drift needs at least one value on each side")]
    EmptySample,
    #[error("non-finite value passed to a statistic; drop NaN and infinities first")]
    NonFinite,
    #[error("drift method `{method}` cannot be used on a {kind} column; pick one of: {allowed}")]
    MethodNotApplicable {
        method: String,
        kind: String,
        allowed: String,
    },
    #[error("unknown drift method `{0}`; use auto, ks, chisquare, z, wasserstein, jensenshannon, psi, kl or hellinger")]
    UnknownMethod(String),
    #[error("reference and current samples of column `{0}` have different types (numerical vs categorical)")]
    MixedKinds(String),
    #[error("inputs have different lengths ({0} vs {1}); pass one value per row")]
    LengthMismatch(usize, usize),
    #[error("invalid input: {0}")]
    InvalidInput(String),
}
