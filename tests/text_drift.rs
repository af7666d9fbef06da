//! `vigil drift --text-column`: prompts encoded by the real sentence encoder
//! (all-MiniLM-L6-v2 in candle) and judged with Evidently's embedding drift methods.
//!
//! Texts come from the shadow runner's intent traffic generator: the reference and a second
//! sample of the same traffic must not drift; traffic whose topics shift (the generator's drift
//! switch sends 60 % of requests to a few other intents) must. `distance` and `mmd` run with
//! Evidently's defaults. (`ratio` is not asserted: with its defaults, 400 texts per side of the
//! same traffic already give 35 % of the 384 components a normed Wasserstein distance ≥ 0.1, above
//! its 0.2 share — Evidently's threshold, not a vigil difference; see docs/analyzer.md.)
//! Needs `bash scripts/models/fetch.sh`.

mod common;

use common::*;
use std::path::Path;
use vigil_shadow_runner::traffic::IntentTraffic;

fn write_texts(path: &Path, seed: u64, drift: bool, n: usize) {
    let mut traffic = IntentTraffic::new(seed);
    traffic.set_drift(drift);
    let mut csv = String::from("prompt,latency_ms\n");
    for i in 0..n {
        let text = traffic.next_request().text;
        csv.push_str(&format!(
            "\"{}\",{}\n",
            text.replace('"', "\"\""),
            20 + (i % 7)
        ));
    }
    std::fs::write(path, csv).unwrap();
}

fn drift_json(dir: &Path, current: &str, method: &str) -> serde_json::Value {
    let out = vigil()
        .args(["drift", "--reference"])
        .arg(dir.join("reference.csv"))
        .arg("--current")
        .arg(dir.join(current))
        .args(["--text-column", "prompt", "--embedding-method", method])
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "vigil drift failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn text_column_drift_catches_a_topic_shift_and_not_a_second_sample() {
    let models = vigil_shadow_runner::default_models_dir().join("all-MiniLM-L6-v2");
    assert!(
        models.join("config.json").exists(),
        "the sentence encoder is missing in {}: run `bash scripts/models/fetch.sh`",
        models.display()
    );
    let dir = tempfile::tempdir().unwrap();
    write_texts(&dir.path().join("reference.csv"), 1, false, 400);
    write_texts(&dir.path().join("same.csv"), 2, false, 400);
    write_texts(&dir.path().join("shifted.csv"), 3, true, 400);

    for method in ["distance", "mmd"] {
        let same = drift_json(dir.path(), "same.csv", method);
        let shifted = drift_json(dir.path(), "shifted.csv", method);
        let (s, d) = (&same["embeddings"][0], &shifted["embeddings"][0]);
        eprintln!("{method}: same {s}\n{method}: shifted {d}");
        for r in [s, d] {
            assert_eq!(r["name"], "prompt");
            assert_eq!(r["method"], method);
            assert_eq!(r["encoder"], "all-MiniLM-L6-v2");
            assert_eq!(r["reference_rows"], 400);
            assert_eq!(r["current_rows"], 400);
        }
        assert_eq!(
            s["drifted"], false,
            "{method}: a second sample drifted: {s}"
        );
        assert_eq!(
            d["drifted"], true,
            "{method}: the topic shift went unseen: {d}"
        );
        assert!(
            d["value"].as_f64().unwrap() > s["value"].as_f64().unwrap(),
            "{method}: the shifted value is not larger"
        );
        // The text column is judged as a whole, not as a categorical column of its own.
        let columns = shifted["columns"].as_array().unwrap();
        assert!(
            columns.iter().all(|c| c["column"] != "prompt"),
            "prompt also analysed per column: {columns:?}"
        );
        assert!(columns.iter().any(|c| c["column"] == "latency_ms"));
        // …and described text by text (Evidently's descriptors as numerical columns).
        for d in [
            "chars",
            "words",
            "non_letter_percent",
            "sentences",
            "empty",
            "refusal",
            "oov_percent",
        ] {
            let name = format!("prompt:{d}");
            assert!(
                columns.iter().any(|c| c["column"] == name.as_str()),
                "no descriptor column {name}"
            );
        }
    }
}

#[test]
fn text_column_errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    write_texts(&dir.path().join("reference.csv"), 1, false, 20);
    let out = vigil()
        .args(["drift", "--reference"])
        .arg(dir.path().join("reference.csv"))
        .arg("--current")
        .arg(dir.path().join("reference.csv"))
        .args(["--text-column", "question"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`question`") && err.contains("prompt"),
        "the error should name the missing column and the real ones: {err}"
    );

    let out = vigil()
        .args(["drift", "--reference"])
        .arg(dir.path().join("reference.csv"))
        .arg("--current")
        .arg(dir.path().join("reference.csv"))
        .args(["--text-column", "prompt", "--encoder"])
        .arg(dir.path().join("no-such-model"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no-such-model") && err.contains("fetch.sh"),
        "the error should name the directory and how to install the encoder: {err}"
    );
}
