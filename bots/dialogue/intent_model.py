"""A small statistical fallback for the question-vs-other decision, where the rules find no cue at all.

Multinomial naive Bayes over character unigrams and bigrams of the *masked* text (products and quantities
blanked, so it learns 多少一§ and 能送§吗, never a product name). Its counts are learnt from the corpus's tune split
(``python -m bench.intent_model``) and kept in ``intent_model.json`` beside this module: plain counts, so the
file can be read and diffed. It never orders anything: it only chooses between the non-ordering intents (a
question, a complaint, a hedge, small talk) and "other", and :func:`bots.dialogue.understanding.understand`
consults it only for a message the rules would call "unknown".
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Final

MODEL_PATH: Final = Path(__file__).with_name("intent_model.json")
# The intents it may answer; anything else (order, add, change, clarify, confirm …) is "other".
CLASSES: Final = (
    "price_question",
    "stock_question",
    "delivery_question",
    "order_status",
    "complaint",
    "discount_request",
    "hedge",
    "chitchat",
    "unknown",
    "other",
)
ALPHA: Final = 0.5  # additive smoothing
_MASK_RUN = re.compile("\x00+")
_DIGITS = re.compile(r"\d+")
_SPACE = re.compile(r"\s+")


def features(masked: str) -> list[str]:
    """Character unigrams and bigrams of the masked text, a product or amount as §, a number as 0."""
    text = _SPACE.sub(" ", _DIGITS.sub("0", _MASK_RUN.sub("§", masked))).strip()
    padded = f"^{text}$"
    return [c for c in text if c != " "] + [padded[i : i + 2] for i in range(len(padded) - 1)]


@dataclass(frozen=True)
class IntentModel:
    counts: Mapping[str, Mapping[str, int]]  # feature -> class -> count
    class_docs: Mapping[str, int]  # class -> messages
    class_features: Mapping[str, int]  # class -> feature occurrences

    def posterior(self, masked: str) -> dict[str, float]:
        """P(class | text) over CLASSES (features never seen in training are ignored)."""
        total_docs = sum(self.class_docs.values())
        vocab = len(self.counts)
        scores: dict[str, float] = {}
        feats = [f for f in features(masked) if f in self.counts]
        for c in CLASSES:
            docs = self.class_docs.get(c, 0)
            if not docs:
                continue
            denom = math.log(self.class_features.get(c, 0) + ALPHA * vocab)
            scores[c] = math.log(docs / total_docs) + sum(math.log(self.counts[f].get(c, 0) + ALPHA) - denom for f in feats)
        top = max(scores.values())
        z = sum(math.exp(s - top) for s in scores.values())
        return {c: math.exp(s - top) / z for c, s in scores.items()}

    def best(self, masked: str) -> tuple[str, float]:
        post = self.posterior(masked)
        name = max(post, key=post.__getitem__)
        return name, post[name]

    def to_json(self) -> str:
        body = {"classes": dict(self.class_docs), "features": dict(self.class_features), "counts": self.counts}
        return json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n"


def train(examples: Iterable[tuple[str, str]], min_count: int = 2) -> IntentModel:
    """Counts from (masked text, intent) pairs; intents outside CLASSES count as "other"; features seen fewer
    than ``min_count`` times dropped (they are one message's wording, not a pattern)."""
    raw: dict[str, dict[str, int]] = {}
    docs: dict[str, int] = {}
    for masked, intent in examples:
        c = intent if intent in CLASSES else "other"
        docs[c] = docs.get(c, 0) + 1
        for f in features(masked):
            raw.setdefault(f, {}).setdefault(c, 0)
            raw[f][c] += 1
    counts = {f: by for f, by in raw.items() if sum(by.values()) >= min_count}
    per_class: dict[str, int] = {}
    for by in counts.values():
        for c, n in by.items():
            per_class[c] = per_class.get(c, 0) + n
    return IntentModel(counts, docs, per_class)


@cache
def load_model(path: Path = MODEL_PATH) -> IntentModel | None:
    """The stored model, read once; None when the file is missing (the rules then answer alone)."""
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return IntentModel(body["counts"], body["classes"], body["features"])
