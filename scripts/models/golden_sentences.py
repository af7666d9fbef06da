"""Sentences for the shadow runner's golden tests (shared by generate_golden.py and export_heads.py).

Written for this project (no external data): short intent-style queries, unicode, emoji, CJK,
an empty string and a 400-word input that exceeds both models' truncation lengths.
"""

_WORDS = ("the shadow runner replays captured production traffic against a candidate model and "
          "compares every prediction with the production model so that teams can see how often "
          "labels flip which intents move and whether the candidate is safe to promote").split()
LONG_400 = " ".join(_WORDS[i % len(_WORDS)] + ("." if i % 17 == 16 else "") for i in range(400))

SENTENCES = [
    "How do I transfer money from checking to savings?",
    "set a timer for ten minutes",
    "what's the weather going to be like in Paris tomorrow",
    "I want to talk to a real person right now, this bot is useless",
    "Can you translate 'good morning' into Spanish?",
    "my card was declined at the restaurant, why?",
    "Café naïve façade — déjà vu at the Zürich Straße",
    "I love this app 😍🔥 but it keeps crashing 😡😡",
    "我想预订明天去北京的机票",
    "東京の天気はどうですか？",
    "Привет! Как мне сбросить пароль?",
    "",
    "   lots   of\twhitespace\nand NEWLINES   ",
    LONG_400,
]
