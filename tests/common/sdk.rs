//! The official `openai` Python SDK as the LLM gateway's caller: its virtualenv (created by
//! `bash scripts/llm/setup.sh`, which scripts/test.sh runs) and the driver
//! tests/llm/openai_client.py, whose every subcommand prints one JSON object.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `$VIGIL_CACHE_DIR`, else `$XDG_CACHE_HOME/vigil`, else `~/.cache/vigil` (as the scripts).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("VIGIL_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .map(|x| PathBuf::from(x).join("vigil"))
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/vigil")
                })
        })
}

/// The python of the `openai` SDK virtualenv; fails with the command that creates it.
pub fn sdk_python() -> PathBuf {
    let p = cache_dir().join("llm-venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run `bash scripts/llm/setup.sh` (scripts/test.sh does)",
        p.display()
    );
    p
}

/// Runs the driver with `args`; its JSON answer.
pub fn sdk(args: &[&str]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/llm/openai_client.py");
    let out = Command::new(sdk_python())
        .arg(script)
        .args(args)
        .output()
        .expect("run the openai SDK driver");
    assert!(
        out.status.success(),
        "openai SDK driver {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("driver JSON")
}
