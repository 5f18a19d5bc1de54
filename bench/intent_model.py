"""Learn ``bots/dialogue/intent_model.json`` from the chat corpus: ``python -m bench.intent_model``. Run it again
after adding messages.

It reads every message of ``bench/chat_corpus/<shop>.jsonl`` — the tune part and the old heldout part, which was
retired into tuning once a fresh held-out set (``bench/chat_corpus/fresh/``, never read here) replaced it.
``--tune-only`` learns from the tune split alone, as before the retirement."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bench.chat import load_catalog, load_corpus, shops
from bots.dialogue.intent_model import MODEL_PATH, train
from bots.dialogue.parser import OrderParser


def examples(*, tune_only: bool = False) -> list[tuple[str, str]]:
    """(masked text, intent) for every message of every shop (the tune split's alone with ``tune_only``), masked
    by that shop's parser."""
    out: list[tuple[str, str]] = []
    for shop in shops():
        parser = OrderParser(load_catalog(shop))
        out += [(parser.survey(m.text).masked, m.intent) for m in load_corpus(shop) if m.split == "tune" or not tune_only]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    cli = argparse.ArgumentParser(description=__doc__)
    cli.add_argument("--tune-only", action="store_true", help="learn from the tune split alone")
    args = cli.parse_args(argv)
    learnt = examples(tune_only=args.tune_only)
    model = train(learnt)
    MODEL_PATH.write_text(model.to_json(), encoding="utf-8")
    which = "tune" if args.tune_only else "tune + retired heldout"
    print(f"{MODEL_PATH}: {len(learnt)} messages ({which}), {len(model.counts)} features", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
