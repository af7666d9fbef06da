//! Text descriptors against Evidently 0.7.23's own descriptor features, text by text
//! (generator: `scripts/golden/analyzer/text_descriptors.py`).

use vigil_analyzer::text::{describe, TextOptions};

#[test]
fn descriptors_match_evidently() {
    let golden: serde_json::Value =
        serde_json::from_str(include_str!("golden/text_descriptors.json")).unwrap();
    let cases = golden["cases"].as_array().unwrap();
    assert!(cases.len() >= 20);
    let options = TextOptions::default();
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let d = describe(text, &options);
        for (name, ours) in [
            ("chars", d.chars),
            ("words", d.words),
            ("non_letter_percent", d.non_letter_percent),
            ("sentences", d.sentences),
        ] {
            let theirs = case[name].as_f64().unwrap();
            assert!(
                (ours - theirs).abs() <= 1e-9 * theirs.abs().max(1.0),
                "{name} of {text:?}: vigil {ours}, Evidently {theirs}"
            );
        }
    }
}
