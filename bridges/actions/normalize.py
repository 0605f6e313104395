"""Text normalisation for keyword matching: one spelling per word, whatever the user typed.

Titles arrive as "Kaffee mit Jüli ☕", "1-on-1 w/ Anna", "REUNIÓN!!": we fold case, strip accents and umlauts
(``ü`` → ``u``, ``ß`` → ``ss``), turn a few emoji into the words they stand for, unify the ways people write a
one-on-one, and keep only letters and digits separated by single spaces. The lexicon's terms go through the
same function, so ``"Fußball"`` in the lexicon and ``"FUSSBALL"`` in a title meet as ``"fussball"``.
"""

from __future__ import annotations

import re
import unicodedata

# Emoji people put in titles instead of (or next to) the word. Variation selectors and skin tones are dropped
# by the punctuation pass afterwards.
_EMOJI_WORDS: dict[str, str] = {
    "🏃": "run",
    "🏋": "gym",
    "🚴": "cycling",
    "🏊": "swim",
    "⚽": "soccer",
    "🎾": "tennis",
    "🧘": "meditation",
    "😴": "sleep",
    "💤": "sleep",
    "🛌": "sleep",
    "🍿": "movie",
    "🎬": "movie",
    "📺": "tv",
    "🎉": "party",
    "🥳": "party",
    "🍻": "drinks",
    "🍺": "beer",
    "🍷": "wine",
    "🍸": "cocktails",
    "☕": "coffee",
    "📚": "study",
    "🎓": "study",
    "💆": "massage",
    "💇": "haircut",
    "👪": "family",
    "🧒": "kids",
    "👶": "baby",
}

_ONE_ON_ONE = re.compile(r"\b1\s*(?::|-?on-?|/|x|o)\s*1\b")
_WITH_SLASH = re.compile(r"\bw/")
_NOT_WORD = re.compile(r"[^0-9a-z]+")


def normalize(text: str) -> str:
    """Lower-case, accent-free, emoji-as-words, punctuation-free form of ``text`` (words joined by one
    space)."""
    for emoji, word in _EMOJI_WORDS.items():
        if emoji in text:
            text = text.replace(emoji, f" {word} ")
    text = text.replace("ß", "ss").replace("ẞ", "ss")
    decomposed = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    text = _ONE_ON_ONE.sub(" oneonone ", text)
    text = _WITH_SLASH.sub(" with ", text)
    return _NOT_WORD.sub(" ", text).strip()
