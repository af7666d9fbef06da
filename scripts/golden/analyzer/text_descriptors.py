#!/usr/bin/env python3
"""Golden values for vigil's text descriptors (analyzer/src/text.rs) from Evidently's own
descriptor features: TextLength, WordCount, NonLetterCharacterPercentage, SentenceCount.

Usage (from the repository root; the same venv as generate.py):
    python3 -m venv /tmp/venv-golden
    /tmp/venv-golden/bin/pip install -r scripts/golden/analyzer/requirements.txt
    /tmp/venv-golden/bin/python scripts/golden/analyzer/text_descriptors.py

Writes analyzer/tests/golden/text_descriptors.json: the inputs and, per text, Evidently's values.
"""
import json
import pathlib

import evidently
from evidently.legacy.features.non_letter_character_percentage_feature import (
    NonLetterCharacterPercentage,
)
from evidently.legacy.features.sentence_count_feature import SentenceCount
from evidently.legacy.features.text_length_feature import TextLength
from evidently.legacy.features.word_count_feature import WordCount

TEXTS = [
    "How do I reset my password?",
    "I'm sorry, but I can't help with that.",
    "Transfer 250.00 EUR to account DE89 3704 0044 0532 0130 00 on Monday.",
    "Hello   world",
    "  leading and trailing spaces  ",
    "Line one.\nLine two?\nLine three!",
    "tabs\tand\nnewlines between words",
    "Ünïcödé wörds, naïve café — déjà vu…",
    "日本語のテキスト",
    "emoji 🙂 in the middle 🚀!",
    "Dr. Smith went to Washington. He arrived at 5 p.m. on Tuesday? Yes.",
    "e.g. this is an example. And another one.",
    "12345",
    "!!!",
    " ",
    "a",
    "Mr. Brown's dog-friendly café (open 24/7) — call +1-555-0100.",
    "As an AI language model, I cannot provide medical advice.",
    "Sure! Here's the summary:\n\n1. First point.\n2. Second point.",
    "What's the weather like in Zürich tomorrow?",
]


def main():
    feats = {
        "chars": TextLength(column_name="t"),
        "words": WordCount(column_name="t"),
        "non_letter_percent": NonLetterCharacterPercentage(column_name="t"),
        "sentences": SentenceCount(column_name="t"),
    }
    cases = []
    for t in TEXTS:
        cases.append({"text": t, **{k: float(f.apply(t)) for k, f in feats.items()}})
    out = {
        "generator": "scripts/golden/analyzer/text_descriptors.py",
        "evidently": evidently.__version__,
        "cases": cases,
    }
    path = pathlib.Path("analyzer/tests/golden/text_descriptors.json")
    path.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {path} ({len(cases)} texts)")


if __name__ == "__main__":
    main()
