//! Golden tests: candle's embeddings and heads against references computed outside Rust.
//!
//! Embeddings: shadow-runner/tests/golden/*.json, written by scripts/models/generate_golden.py
//! (numpy float64 BERT for all-MiniLM-L6-v2, onnxruntime for paraphrase-MiniLM-L3-v2).
//! Heads: scikit-learn's own predictions, computed by scripts/models/fetch.sh into the model cache
//! (the heads have no licence, so nothing derived from them is committed).
//!
//! Needs `bash scripts/models/fetch.sh`; fails in CI without it, skips with a notice elsewhere.

mod common;

use common::{load_golden, max_abs_diff, models_or_skip, test_device, HEADS, L3, L6};
use serde::Deserialize;
use vigil_shadow_runner::{cosine, HeadKind, LinearHead, SentenceEncoder};

const MIN_COS: f64 = 0.99999;
const MAX_DIFF: f32 = 1e-5;

fn check_encoder(model: &str, batch_sizes: &[usize]) {
    let Some(dir) = models_or_skip(model, &[model]) else {
        return;
    };
    let golden = load_golden(model);
    let device = test_device();
    let texts: Vec<&str> = golden.cases.iter().map(|c| c.text.as_str()).collect();
    let encoder = SentenceEncoder::load(&dir.join(model), &device).expect("load encoder");
    assert_eq!(encoder.max_seq_length(), golden.max_seq_length);
    assert!(
        golden
            .cases
            .iter()
            .any(|c| c.num_tokens == golden.max_seq_length),
        "the golden set must contain an input longer than the truncation length"
    );
    for &batch in batch_sizes {
        let encoder_b = SentenceEncoder::load(&dir.join(model), &device)
            .expect("load encoder")
            .with_batch_size(batch);
        let got = encoder_b.encode(&texts).expect("encode");
        assert_eq!(got.len(), golden.cases.len());
        let (mut worst_cos, mut worst_diff) = (1f64, 0f32);
        for (case, emb) in golden.cases.iter().zip(&got) {
            let cos = cosine(emb, &case.embedding);
            let diff = max_abs_diff(emb, &case.embedding);
            worst_cos = worst_cos.min(cos);
            worst_diff = worst_diff.max(diff);
            assert!(
                cos >= MIN_COS && diff <= MAX_DIFF,
                "{model} batch {batch}: {:?} ({} tokens): cos {cos:.9}, max abs diff {diff:.2e}",
                case.text.chars().take(40).collect::<String>(),
                case.num_tokens
            );
        }
        eprintln!(
            "{model} batch {batch}: {} sentences, min cos {worst_cos:.9}, max abs diff {worst_diff:.2e}",
            got.len()
        );
    }
}

#[test]
fn minilm_l6_matches_reference_embeddings() {
    // batch 32: one padded batch (everything padded to the 256-token input); batch 1: no padding.
    check_encoder(L6, &[32, 1]);
}

#[test]
fn minilm_l3_matches_onnxruntime_embeddings() {
    check_encoder(L3, &[32, 5]);
}

#[derive(Deserialize)]
struct SklearnCase {
    text: String,
    label: String,
    scores: Vec<f32>,
}

#[derive(Deserialize)]
struct SklearnHead {
    cases: Vec<SklearnCase>,
}

#[derive(Deserialize)]
struct SklearnReference {
    heads: std::collections::HashMap<String, SklearnHead>,
}

#[test]
fn intent_heads_match_sklearn() {
    let Some(dir) = models_or_skip("intent heads", &[L6, HEADS]) else {
        return;
    };
    let ref_path = dir.join(HEADS).join("sklearn_reference.json");
    let reference: SklearnReference =
        serde_json::from_str(&std::fs::read_to_string(&ref_path).unwrap_or_else(|e| {
            panic!(
                "cannot read {}: {e}; run `bash scripts/models/fetch.sh --force`",
                ref_path.display()
            )
        }))
        .expect("sklearn reference");
    let device = test_device();
    let encoder = SentenceEncoder::load(&dir.join(L6), &device).expect("load encoder");
    for (file, kind) in [
        ("logistic_regression", HeadKind::Softmax),
        ("linear_svc", HeadKind::DecisionScores),
    ] {
        let head = LinearHead::load(
            &dir.join(HEADS).join(format!("{file}.safetensors")),
            &dir.join(HEADS).join("labels.json"),
            kind,
            &device,
        )
        .expect("load head");
        let cases = &reference.heads[file].cases;
        let texts: Vec<&str> = cases.iter().map(|c| c.text.as_str()).collect();
        let preds = head
            .predict(&encoder.encode_tensor(&texts).expect("encode"))
            .expect("predict");
        let mut worst = 0f32;
        for (case, pred) in cases.iter().zip(&preds) {
            assert_eq!(pred.label, case.label, "{file}: {:?}", case.text);
            let diff = max_abs_diff(&pred.scores, &case.scores);
            worst = worst.max(diff);
            assert!(
                diff <= 1e-4,
                "{file}: {:?}: scores differ by {diff:.2e}",
                case.text
            );
        }
        eprintln!(
            "{file}: {} labels identical to sklearn, max score diff {worst:.2e}",
            preds.len()
        );
    }
}

#[test]
fn encoder_vocabulary_is_its_whole_words() {
    use vigil_analyzer::cli::TextEncoder;
    let Some(dir) = models_or_skip(L6, &[L6]) else {
        return;
    };
    let encoder = SentenceEncoder::load(&dir.join(L6), &test_device()).expect("load encoder");
    let vocab = TextEncoder::vocabulary(&encoder).expect("a WordPiece vocabulary");
    // all-MiniLM-L6-v2 has 30,522 entries: whole words, `##` pieces, `[CLS]`-like specials.
    // 23,695 whole words, as Python counts them in tokenizer.json.
    assert_eq!(vocab.len(), 23_695);
    for word in ["the", "model", "drift"] {
        assert!(vocab.contains(word), "{word} missing");
    }
    assert!(!vocab.iter().any(|w| w.starts_with("##") || w == "[cls]"));
    let options = vigil_analyzer::text::TextOptions {
        vocabulary: Some(vocab),
        ..Default::default()
    };
    let d = vigil_analyzer::text::describe("the model drifted zxqvbn", &options);
    // "zxqvbn" is not a whole word (the encoder sees it in pieces); the other three are.
    assert_eq!(d.oov_percent, Some(25.0));
}
