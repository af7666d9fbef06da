//! vigil-analyzer: statistics that tell whether a model's inputs or outputs changed, whether
//! it treats groups fairly, and how well it performs.
//!
//! Everything here is a pure function over plain data or over sufficient statistics
//! (distinct values with counts, per-bin counts, confusion counts), so the same maths runs
//! on raw arrays (the offline CLI) and on database aggregates. Drift follows Evidently's
//! definitions (tests, default test per column, thresholds, binning) and SciPy's p-values;
//! fairness follows Fairlearn's.
//!
//! ```
//! use vigil_analyzer::drift::{column_drift, ColumnSample, DriftTest, NumericCounts};
//!
//! let reference = NumericCounts::from_values(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]).unwrap();
//! let current = NumericCounts::from_values(&[8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0]).unwrap();
//! let result = column_drift(
//!     "age",
//!     &ColumnSample::Numerical(reference),
//!     &ColumnSample::Numerical(current),
//!     None, // Evidently's default: KS for a small numerical column
//!     None,
//! )
//! .unwrap();
//! assert_eq!(result.method, DriftTest::KolmogorovSmirnov);
//! assert!(result.score < 0.05 && result.drift);
//! ```

pub mod alerting;
pub mod cli;
pub mod drift;
pub mod error;
pub mod fairness;
pub mod kpi;
pub mod monitor;
pub mod performance;
pub mod quality;
pub mod special;
pub mod text;

pub use error::AnalyzerError;
