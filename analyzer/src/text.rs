//! Text descriptors: numbers that describe one text (a prompt, a model's answer), so the existing
//! numeric drift tests can watch text columns — a shift in length, in the share of symbols, in
//! words the encoder does not know, in empty or refusing answers.
//!
//! Length, word count, non-letter share and sentence count are Evidently's descriptors
//! (`TextLength`, `WordCount`, `NonLetterCharacterPercentage`, `SentenceCount`, 0.7.23), with
//! the same quirks, golden-tested in `tests/text_golden.rs`. The out-of-vocabulary share is
//! measured against the sentence encoder's own vocabulary (what the encoder cannot represent as
//! a whole word) instead of Evidently's NLTK English word list, and refusals are openings from a
//! configurable list.
//!
//! ```
//! use vigil_analyzer::text::{describe, TextOptions};
//! let d = describe("I'm sorry, but I can't help with that.", &TextOptions::default());
//! assert_eq!(d.chars, 38.0);
//! assert_eq!(d.words, 8.0);
//! assert!(d.refusal);
//! ```

use std::collections::HashSet;
use std::sync::Arc;

use serde::Serialize;

/// Openings that mark an answer as a refusal unless the configuration says otherwise
/// (compared case-insensitively with the start of the trimmed text).
pub const DEFAULT_REFUSAL_OPENINGS: &[&str] = &[
    "i'm sorry",
    "i am sorry",
    "sorry, i",
    "i apologize",
    "i cannot",
    "i can't",
    "i can not",
    "i'm unable",
    "i am unable",
    "i won't",
    "i will not",
    "as an ai",
    "unfortunately, i",
];

/// What [`describe`] needs besides the text.
#[derive(Debug, Clone)]
pub struct TextOptions {
    /// Lower-case openings that mark a refusal.
    pub refusal_openings: Vec<String>,
    /// The encoder's whole-word vocabulary (lower case); `None`: no out-of-vocabulary share.
    pub vocabulary: Option<Arc<HashSet<String>>>,
}

impl Default for TextOptions {
    fn default() -> Self {
        TextOptions {
            refusal_openings: DEFAULT_REFUSAL_OPENINGS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            vocabulary: None,
        }
    }
}

/// The descriptors of one text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TextDescriptors {
    /// Characters (Unicode scalar values, as Python's `len`).
    pub chars: f64,
    /// Words: ASCII letters and spaces kept, everything else removed, split at spaces (so
    /// "don't" is one word and a word glued to the next by a newline joins it, as in Evidently).
    pub words: f64,
    /// Percentage (0–100) of characters that are neither letters nor the space character.
    pub non_letter_percent: f64,
    /// Sentences: splits after `.` or `?` followed by whitespace, not after "e.g."-like or
    /// "Mr."-like abbreviations (Evidently's expression); at least 1.
    pub sentences: f64,
    /// Percentage (0–100) of words (letters and digits) that are not whole words of the
    /// encoder's vocabulary; `None` without a vocabulary.
    pub oov_percent: Option<f64>,
    /// Nothing but whitespace.
    pub empty: bool,
    /// Starts with one of the refusal openings.
    pub refusal: bool,
}

/// Describes `text`.
pub fn describe(text: &str, options: &TextOptions) -> TextDescriptors {
    let chars: Vec<char> = text.chars().collect();
    let n = chars.len();
    let non_letters = chars
        .iter()
        .filter(|c| !is_python_alpha(**c) && **c != ' ')
        .count();
    TextDescriptors {
        chars: n as f64,
        words: word_count(text) as f64,
        non_letter_percent: if n == 0 {
            0.0
        } else {
            100.0 * non_letters as f64 / n as f64
        },
        sentences: sentence_count(&chars) as f64,
        oov_percent: options.vocabulary.as_ref().map(|v| oov_percent(text, v)),
        empty: text.trim().is_empty(),
        refusal: is_refusal(text, &options.refusal_openings),
    }
}

/// Python's `str.isalpha` for one character: a letter (Unicode categories L*). Rust's
/// `is_alphabetic` also counts letter-like marks and numbers (`Other_Alphabetic`, `Nl`); the
/// difference only shows on combining marks and Roman numerals.
fn is_python_alpha(c: char) -> bool {
    c.is_alphabetic()
}

/// Evidently's `WordCount`: remove everything but `[a-zA-Z ]`, split at whitespace.
fn word_count(text: &str) -> usize {
    let kept: String = text
        .chars()
        .filter(|c| c.is_ascii_alphabetic() || *c == ' ')
        .collect();
    kept.split_whitespace().count()
}

/// Python's `\w` for one character.
fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Evidently's `SentenceCount`: `re.split(r"(?<!\w\.\w.)(?<![A-Z][a-z]\.)(?<=\.|\?)\s", text)`,
/// at least 1. The split points are whitespace right after `.` or `?`, unless the four
/// characters before are word, `.`, word, any-but-newline ("e.g.") or the three before are an
/// upper-case letter, a lower-case letter and `.` ("Mr.").
fn sentence_count(chars: &[char]) -> usize {
    let mut splits = 0;
    for i in 1..chars.len() {
        if !chars[i].is_whitespace() || !matches!(chars[i - 1], '.' | '?') {
            continue;
        }
        let abbreviation = i >= 4
            && is_word(chars[i - 4])
            && chars[i - 3] == '.'
            && is_word(chars[i - 2])
            && chars[i - 1] != '\n';
        let title = i >= 3
            && chars[i - 3].is_ascii_uppercase()
            && chars[i - 2].is_ascii_lowercase()
            && chars[i - 1] == '.';
        if !abbreviation && !title {
            splits += 1;
        }
    }
    (splits + 1).max(1)
}

/// Words as Evidently's `OOVWordsPercentage` cuts them (`[A-Za-z0-9 ]` kept, split at
/// spaces), looked up lower-case in `vocabulary`.
fn oov_percent(text: &str, vocabulary: &HashSet<String>) -> f64 {
    let kept: String = text
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == ' ')
        .collect();
    let words: Vec<String> = kept.split_whitespace().map(str::to_lowercase).collect();
    if words.is_empty() {
        return 0.0;
    }
    let oov = words.iter().filter(|w| !vocabulary.contains(*w)).count();
    100.0 * oov as f64 / words.len() as f64
}

fn is_refusal(text: &str, openings: &[String]) -> bool {
    let start = text
        .trim_start_matches(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '*' | '>'))
        .to_lowercase()
        .replace('’', "'");
    openings
        .iter()
        .any(|o| !o.is_empty() && start.starts_with(&o.to_lowercase()))
}

/// The whole-word entries of a WordPiece vocabulary (`vocab.txt`, or the `model.vocab` keys of
/// a `tokenizer.json`): entries that are not continuation pieces (`##…`) or special tokens.
pub fn whole_words<'a>(entries: impl IntoIterator<Item = &'a str>) -> HashSet<String> {
    entries
        .into_iter()
        .filter(|t| {
            let special = t.starts_with('[') && t.ends_with(']');
            !t.starts_with("##") && !special
        })
        .map(str::to_lowercase)
        .collect()
}

/// (name, integer-valued, value) of a text descriptor column `COL:name`: what `vigil drift
/// --text-column` and text monitors test as numerical columns.
pub type Descriptor = (&'static str, bool, fn(&TextDescriptors) -> f64);
pub const DESCRIPTORS: [Descriptor; 6] = [
    ("chars", true, |d| d.chars),
    ("words", true, |d| d.words),
    ("non_letter_percent", false, |d| d.non_letter_percent),
    ("sentences", true, |d| d.sentences),
    ("empty", true, |d| f64::from(u8::from(d.empty))),
    ("refusal", true, |d| f64::from(u8::from(d.refusal))),
];

/// The out-of-vocabulary share as a descriptor column `COL:oov_percent`: judged only where the
/// encoder's vocabulary is known (see [`descriptors`]).
pub const OOV_DESCRIPTOR: Descriptor = ("oov_percent", false, |d| d.oov_percent.unwrap_or(0.0));

/// The descriptors judged with `options`: [`DESCRIPTORS`], plus [`OOV_DESCRIPTOR`] when
/// `options` carries the encoder's vocabulary.
pub fn descriptors(options: &TextOptions) -> Vec<Descriptor> {
    let mut all = DESCRIPTORS.to_vec();
    if options.vocabulary.is_some() {
        all.push(OOV_DESCRIPTOR);
    }
    all
}

/// Every descriptor name a per-column option may name (`COL:name`), the vocabulary-dependent one
/// included.
pub fn descriptor_names() -> impl Iterator<Item = &'static str> {
    DESCRIPTORS
        .iter()
        .chain(std::iter::once(&OOV_DESCRIPTOR))
        .map(|(name, _, _)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_text_is_empty_and_has_no_division_by_zero() {
        let d = describe("", &TextOptions::default());
        assert_eq!(d.chars, 0.0);
        assert_eq!(d.non_letter_percent, 0.0);
        assert_eq!(d.sentences, 1.0);
        assert!(d.empty);
        assert!(!d.refusal);
        assert!(describe(" \n\t", &TextOptions::default()).empty);
    }

    #[test]
    fn refusals_by_opening_only() {
        let o = TextOptions::default();
        assert!(describe("  I’m sorry, I can’t do that", &o).refusal);
        assert!(describe("\"As an AI model, …", &o).refusal);
        assert!(!describe("Happy to help. I'm sorry to hear that.", &o).refusal);
        let custom = TextOptions {
            refusal_openings: vec!["nope".into()],
            vocabulary: None,
        };
        assert!(describe("Nope.", &custom).refusal);
        assert!(!describe("I'm sorry", &custom).refusal);
    }

    #[test]
    fn oov_against_the_encoder_vocabulary() {
        let vocab = whole_words(["[CLS]", "how", "do", "i", "reset", "my", "##word", "pass"]);
        assert!(!vocab.contains("[cls]") && !vocab.contains("##word"));
        let o = TextOptions {
            vocabulary: Some(Arc::new(vocab)),
            ..TextOptions::default()
        };
        // "password" is not a whole word here (only "pass" + "##word"): 1 of 6.
        let d = describe("How do I reset my password?", &o);
        assert!((d.oov_percent.unwrap() - 100.0 / 6.0).abs() < 1e-12);
        assert_eq!(describe("?!", &o).oov_percent, Some(0.0));
    }
}
