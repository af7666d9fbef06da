//! A training snapshot as a monitor's reference: a CSV file (header row) whose columns are named
//! like the monitored columns (`monthly_spend`, `plan`, `prediction.score`, …).
//!
//! The file is read into exact per-value counts, so it is compared with the current window's
//! exact counts (the window is never binned when the reference is a file: bin edges come from
//! the data of both sides, and the file's side is not in the database).

use super::MonitorError;
use crate::drift::{CategoryCounts, ColumnSample, NumericCounts};
use std::collections::HashMap;
use std::path::Path;

/// Raw values of each column of a snapshot, missing cells dropped.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    columns: HashMap<String, Vec<String>>,
}

impl Snapshot {
    /// Reads `path`. Errors name the file and, for malformed rows, the row.
    pub fn read(path: &Path) -> Result<Snapshot, MonitorError> {
        let name = path.display().to_string();
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_path(path)
            .map_err(|e| MonitorError::Config(format!("reference file {name}: {e}")))?;
        let headers: Vec<String> = reader
            .headers()
            .map_err(|e| MonitorError::Config(format!("reference file {name}: {e}")))?
            .iter()
            .map(str::to_string)
            .collect();
        let mut columns: HashMap<String, Vec<String>> =
            headers.iter().map(|h| (h.clone(), Vec::new())).collect();
        for (i, record) in reader.records().enumerate() {
            let record = record.map_err(|e| {
                MonitorError::Config(format!("reference file {name}, row {}: {e}", i + 2))
            })?;
            for (h, cell) in headers.iter().zip(record.iter()) {
                let cell = cell.trim();
                if !cell.is_empty() {
                    if let Some(v) = columns.get_mut(h) {
                        v.push(cell.to_string());
                    }
                }
            }
        }
        Ok(Snapshot { columns })
    }

    /// The non-empty cells of `column` (trimmed), in file order; `None` when the file has no
    /// such column. Text monitors read their reference texts from here.
    pub fn texts(&self, column: &str) -> Option<&[String]> {
        self.columns.get(column).map(Vec::as_slice)
    }

    /// The reference sample of `column`, typed like the current window's sample.
    pub fn sample(
        &self,
        column: &str,
        current: &ColumnSample,
    ) -> Result<ColumnSample, MonitorError> {
        let cells = self.columns.get(column).ok_or_else(|| {
            MonitorError::Config(format!("reference file has no column `{column}`"))
        })?;
        match current {
            ColumnSample::Categorical(_) => Ok(ColumnSample::Categorical(
                CategoryCounts::from_values(cells),
            )),
            ColumnSample::Numerical(cur) => {
                let mut values = Vec::with_capacity(cells.len());
                for c in cells {
                    match c.parse::<f64>() {
                        Ok(x) if x.is_finite() => values.push(x),
                        // Missing and infinite values are dropped, as in the events.
                        Ok(_) => {}
                        Err(_) => {
                            return Err(MonitorError::Config(format!(
                                "column `{column}` is numerical in the events but the reference file has `{c}`"
                            )))
                        }
                    }
                }
                let integer = cur.integer_typed() && values.iter().all(|v| v.fract() == 0.0);
                let reference = NumericCounts::from_values(&values).map_err(|e| {
                    MonitorError::Config(format!("reference file, column `{column}`: {e}"))
                })?;
                Ok(ColumnSample::Numerical(
                    reference.with_integer_type(integer),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_typed_samples_and_names_bad_cells() {
        let dir = std::env::temp_dir().join(format!("vigil-snap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ref.csv");
        let mut f = std::fs::File::create(&path).unwrap();
        writeln!(f, "spend,plan,odd\n1.5,pro,x\n2,free,\n,pro,3").unwrap();
        drop(f);
        let s = Snapshot::read(&path).unwrap();
        let num = ColumnSample::Numerical(NumericCounts::from_values(&[1.0]).unwrap());
        let cat = ColumnSample::Categorical(CategoryCounts::from_values(&["a"]));
        match s.sample("spend", &num).unwrap() {
            ColumnSample::Numerical(n) => assert_eq!((n.total(), n.integer_typed()), (2, false)),
            _ => panic!("numerical expected"),
        }
        match s.sample("plan", &cat).unwrap() {
            ColumnSample::Categorical(c) => assert_eq!((c.get("pro"), c.get("free")), (2, 1)),
            _ => panic!("categorical expected"),
        }
        assert!(s
            .sample("odd", &num)
            .unwrap_err()
            .to_string()
            .contains("`x`"));
        assert!(s
            .sample("nope", &num)
            .unwrap_err()
            .to_string()
            .contains("no column `nope`"));
        assert!(Snapshot::read(&dir.join("missing.csv"))
            .unwrap_err()
            .to_string()
            .contains("missing.csv"));
    }
}
