#!/usr/bin/env python3
"""Deterministic LLM-prompt-like texts for the text-drift benchmarks (docs/benchmarks.md,
"Text drift (issue #16)"). Standard library only.

    python3 scripts/bench/text_drift_texts.py OUT_DIR [N]      # N per side, default 10000

Writes OUT_DIR/reference.csv and OUT_DIR/current.csv (one column, `prompt`, N rows each) and
OUT_DIR/events.ndjson: inference events of model `assistant` whose `input` is a prompt — window 0
(T0 .. T0+1h) holds the first 2,000 reference prompts, window 1 (T0+1h .. T0+2h) the first 2,000
current prompts (T0 = 1790000000 rounded down to the hour), for a text monitor pass over `vigil
ingest`ed events. The reference mixes assistant tasks (writing, summarising, explaining,
translating, planning, coding); the current side shifts the mix towards coding and adds two
topics the reference never has (legal/tenancy and health questions) on a quarter of its prompts.
Same seed, same files.
"""
import csv
import json
import os
import random
import sys

PEOPLE = ["my landlord", "my manager", "a new client", "my team", "the school", "my neighbour",
          "a recruiter", "my bank", "the city council", "an old friend"]
SUBJECTS = ["the broken heater", "a late invoice", "next week's offsite", "a refund request",
            "the project deadline", "a job offer", "the noise at night", "a missed delivery",
            "the quarterly report", "a schedule change"]
TONES = ["polite", "firm", "friendly", "formal", "short", "apologetic"]
TOPICS = ["photosynthesis", "compound interest", "how vaccines work", "black holes",
          "the French revolution", "inflation", "neural networks", "plate tectonics",
          "the stock market", "climate change", "blockchains", "the immune system",
          "supply and demand", "quantum computing", "the water cycle"]
AUDIENCES = ["a ten-year-old", "a beginner", "my grandmother", "a university student",
             "a busy executive"]
LANGS = ["French", "Spanish", "German", "Japanese", "Italian", "Portuguese"]
PHRASES = ["where is the train station", "I would like a table for two", "thank you for your help",
           "how much does this cost", "the meeting is postponed", "happy birthday"]
TRIPS = ["three days in Lisbon", "a weekend in the mountains", "a week in Japan",
         "a road trip along the coast", "a family holiday in Rome"]
MEALS = ["vegetarian dinners", "high-protein lunches", "quick breakfasts", "a dinner party",
         "meals for a week on a budget"]
LANGS_CODE = ["Python", "Rust", "JavaScript", "SQL", "Go", "TypeScript", "Bash"]
TASKS_CODE = ["parse a CSV file and sum a column", "reverse a linked list",
              "read a JSON file and print the keys", "retry an HTTP request with backoff",
              "find duplicate rows in a table", "deduplicate a list while keeping order",
              "merge two sorted arrays", "count word frequencies in a text file"]
ERRORS = ["a null pointer exception", "an index out of range error", "a borrow checker error",
          "a deadlock", "a segmentation fault", "a timeout", "a type mismatch"]
LEGAL = ["my deposit was not returned", "my employer did not pay overtime",
         "a contractor left the job unfinished", "my flight was cancelled",
         "my landlord wants to raise the rent by 30%", "a neighbour's tree damaged my car"]
PLACES_LEGAL = ["California", "Germany", "Ontario", "the UK", "Australia", "New York"]
SYMPTOMS = ["a headache that lasts three days", "trouble sleeping", "a sore knee after running",
            "a dry cough", "back pain from sitting all day", "itchy eyes in spring"]

BASE = [
    (3, lambda r: f"Write a {r.choice(TONES)} email to {r.choice(PEOPLE)} about {r.choice(SUBJECTS)}."),
    (2, lambda r: f"Can you draft a {r.choice(TONES)} message to {r.choice(PEOPLE)} explaining {r.choice(SUBJECTS)} and asking what we should do next?"),
    (3, lambda r: f"Explain {r.choice(TOPICS)} to {r.choice(AUDIENCES)} in simple terms."),
    (2, lambda r: f"What is the difference between {r.choice(TOPICS)} and {r.choice(TOPICS)}? Give an example."),
    (2, lambda r: f"Summarise the main arguments for and against {r.choice(TOPICS)} in five bullet points."),
    (2, lambda r: f"Translate \"{r.choice(PHRASES)}\" into {r.choice(LANGS)} and explain the grammar."),
    (2, lambda r: f"Plan {r.choice(TRIPS)} with a budget of {r.randint(3, 30) * 100} dollars."),
    (2, lambda r: f"Suggest {r.choice(MEALS)} with a shopping list."),
    (2, lambda r: f"Write a {r.choice(LANGS_CODE)} function to {r.choice(TASKS_CODE)}."),
    (1, lambda r: f"Why does my {r.choice(LANGS_CODE)} program crash with {r.choice(ERRORS)}?"),
]
SHIFT = [
    (6, lambda r: f"Write a {r.choice(LANGS_CODE)} function to {r.choice(TASKS_CODE)}, with tests."),
    (5, lambda r: f"Why does my {r.choice(LANGS_CODE)} program crash with {r.choice(ERRORS)}? Here is the stack trace."),
    (4, lambda r: f"Is it legal in {r.choice(PLACES_LEGAL)} that {r.choice(LEGAL)}? What can I do?"),
    (4, lambda r: f"I have {r.choice(SYMPTOMS)}. Should I see a doctor or can I treat it at home?"),
]


def pick(r, table):
    total = sum(w for w, _ in table)
    x = r.random() * total
    for w, f in table:
        x -= w
        if x < 0:
            return f(r)
    return table[-1][1](r)


def prompts(seed, n, shifted):
    r = random.Random(seed)
    out = []
    for _ in range(n):
        if shifted and r.random() < 0.25:
            out.append(pick(r, SHIFT))
        else:
            out.append(pick(r, BASE))
    return out


def main():
    out_dir = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
    os.makedirs(out_dir, exist_ok=True)
    ref = prompts(16, n, False)
    cur = prompts(1616, n, True)
    for name, texts in (("reference.csv", ref), ("current.csv", cur)):
        with open(os.path.join(out_dir, name), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["prompt"])
            for t in texts:
                w.writerow([t])
    t0 = 1_790_000_000 // 3600 * 3600
    per_window = min(2000, n)
    with open(os.path.join(out_dir, "events.ndjson"), "w") as f:
        for k, texts in enumerate((ref[:per_window], cur[:per_window])):
            for i, text in enumerate(texts):
                ts_ms = (t0 + k * 3600) * 1000 + i * 3600 * 1000 // per_window
                f.write(json.dumps({
                    "event_id": f"assistant-{k}-{i}",
                    "ts": ts_ms,
                    "model": "assistant",
                    "version": "v1",
                    "unit_id": f"u{i}",
                    "features": {"n_words": len(text.split())},
                    "prediction": {"score": 0.9, "label": "answered"},
                    "latency_ms": 20.0,
                    "input": text,
                }) + "\n")
    print(f"{out_dir}: reference.csv, current.csv ({n} prompts each), events.ndjson "
          f"({2 * per_window} events, windows from {t0})")


if __name__ == "__main__":
    main()
