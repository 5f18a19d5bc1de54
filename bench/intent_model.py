"""Learn ``bots/dialogue/intent_model.json`` from the chat corpus's tune split (heldout messages are never read
into it): ``python -m bench.intent_model``. Run it again after adding tune messages."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bench.chat import load_catalog, load_corpus, shops
from bots.dialogue.intent_model import MODEL_PATH, train
from bots.dialogue.parser import OrderParser


def tune_examples() -> list[tuple[str, str]]:
    """(masked text, intent) for every tune message of every shop, masked by that shop's parser."""
    out: list[tuple[str, str]] = []
    for shop in shops():
        parser = OrderParser(load_catalog(shop))
        out += [(parser.survey(m.text).masked, m.intent) for m in load_corpus(shop) if m.split == "tune"]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__).parse_args(argv)
    del args
    examples = tune_examples()
    model = train(examples)
    MODEL_PATH.write_text(model.to_json(), encoding="utf-8")
    print(f"{MODEL_PATH}: {len(examples)} tune messages, {len(model.counts)} features", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
