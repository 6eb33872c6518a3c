"""Parity of the curate quality filters with datatrove's, defaults on both sides.

    pip install -e '.[bench]'            # datatrove and nltk
    python bench/filters_parity.py                   # agreement table and the reasons behind each disagreement
    python bench/filters_parity.py --show 2          # plus two example documents per disagreement kind

Builds a mixed corpus from the bundled data (tinyshakespeare passages, GSM8K and MATH-500 question +
answer, chunks of Python stdlib files) plus synthetic junk (menus, keyword lists, repeated lines,
lorem ipsum, bullet and ellipsis pages, symbol soup, short answers), runs `wb curate`'s filters and
datatrove's C4QualityFilter, FineWebQualityFilter, GopherQualityFilter and GopherRepetitionFilter on every
document, and prints per filter the share of documents on which both decide the same (also counting the
two deliberate Gopher differences as agreement), then each kind of disagreement as (ours, datatrove,
source) with its count, and the seconds each side took on one core (a shared machine: compare the ratio).

datatrove splits words with NLTK's `word_tokenize` and C4 sentences with NLTK's English Punkt model.
That model (`punkt_tab`) is data NLTK downloads at run time; when it is not installed this script uses
the same NLTK code with an untrained Punkt tokenizer that knows common English abbreviations (said in
the output). The word tokenizer, the part that matters for Gopher, is the same either way.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FILTERS = ("c4", "fineweb", "gopher_quality", "gopher_repetition")
ABBREVIATIONS = ("mr", "mrs", "ms", "dr", "st", "vs", "etc", "e.g", "i.e", "no", "fig", "jan", "feb", "inc",
                 "ltd", "co", "jr", "sr", "prof", "approx", "dept", "est", "vol")


def corpus(seed: int = 0) -> list[tuple[str, str]]:
    """(source, text) documents: real bundled text and synthetic junk, shuffled with `seed`."""
    from workbench.workspace import bundled_data_dir

    rng = random.Random(seed)
    data = bundled_data_dir()
    docs: list[tuple[str, str]] = []
    lines = (data / "tinyshakespeare" / "input.txt").read_text().splitlines()
    i = 0
    while i < len(lines) and len(docs) < 900:
        n = rng.randint(8, 80)
        docs.append(("shakespeare", "\n".join(lines[i:i + n]).strip()))
        i += n
    gsm = [json.loads(line) for line in (data / "gsm8k" / "test.jsonl").read_text().splitlines()]
    docs += [("gsm8k", f"{r['question']}\n{r['answer']}") for r in rng.sample(gsm, 800)]
    docs += [("math500", f"{r['question']}\n\n{r['answer']}")
             for r in map(json.loads, (data / "math500" / "test.jsonl").read_text().splitlines())]
    for line in (data / "python_stdlib" / "stdlib.jsonl").read_text().splitlines():
        code = json.loads(line)["text"].splitlines()
        for start in range(0, min(len(code), 1200), 120):
            docs.append(("stdlib", "\n".join(code[start:start + 120])))
    docs += [("junk", text) for text in junk(rng, 500)]
    rng.shuffle(docs)
    return [(s, t) for s, t in docs if t.strip()]


def junk(rng: random.Random, n: int) -> list[str]:
    """Synthetic web junk of several kinds, each built from the bundled Shakespeare vocabulary."""
    from workbench.workspace import bundled_data_dir

    text = (bundled_data_dir() / "tinyshakespeare" / "input.txt").read_text()
    words = [w for w in text.split() if w.isalpha()]
    sentences = [s.strip() for s in text.replace("\n", " ").split(". ") if len(s.split()) > 4]

    def sent() -> str:
        return rng.choice(sentences).strip() + "."

    kinds = [
        lambda: "\n".join(rng.choice(["Home", "About us", "Contact", "Login", "Shop", "Cart", "Blog", "FAQ"])
                          for _ in range(rng.randint(4, 30))),
        lambda: ", ".join(rng.choice(words) for _ in range(rng.randint(20, 200))),
        lambda: "\n".join([sent()] * rng.randint(2, 12) + [sent() for _ in range(rng.randint(1, 8))]),
        lambda: " ".join(sent() for _ in range(rng.randint(3, 12))).replace(rng.choice(words), "lorem ipsum", 1),
        lambda: "\n".join(f"{rng.choice(['-', '•', '*'])} {' '.join(rng.sample(words, rng.randint(2, 9)))}"
                          for _ in range(rng.randint(5, 40))),
        lambda: "\n".join(" ".join(rng.sample(words, rng.randint(3, 12))) + rng.choice(["...", "…", ".", ""])
                          for _ in range(rng.randint(5, 30))),
        lambda: " ".join(rng.choice(["#", "###", "$", "%", "&&", "=>", "|", "...", "0x1f", "42"]) + " " + rng.choice(words)
                         for _ in range(rng.randint(20, 120))),
        lambda: rng.choice(["The answer is 42.", "Yes.", "I think so, yes!", "See above.", "x = 3"]),
        lambda: " ".join(sent() for _ in range(rng.randint(5, 40))) + rng.choice(["", " {see note}", " [1]"]),
        lambda: "\n\n".join(sent() + " " + sent() for _ in range(rng.randint(2, 10))) * rng.randint(1, 3),
        lambda: ("We use cookies to improve your experience. Read our privacy policy.\n"
                 + "\n".join(sent() for _ in range(rng.randint(2, 12)))),
        lambda: " ".join(rng.choice(words[:50]) for _ in range(rng.randint(60, 400))),
        lambda: "\n".join(f'"{sent()[:-1]}," he said. "{sent()}"' for _ in range(rng.randint(3, 15))),
        lambda: "\n".join(f"    {sent()}" for _ in range(rng.randint(3, 15))) + "\n    " + sent(),
    ]
    return [rng.choice(kinds)() for _ in range(n)]


def nltk_tokenizer():
    """datatrove's NLTK English tokenizer, or the same code with an untrained Punkt model; and a label."""
    from datatrove.utils.word_tokenizers import NLTKTokenizer, WordTokenizer, strip_strings

    try:
        import nltk

        nltk.data.find("tokenizers/punkt_tab/english/")
        return "english", "NLTK English Punkt model"
    except LookupError:
        pass
    from nltk.tokenize import NLTKWordTokenizer
    from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer

    params = PunktParameters()
    params.abbrev_types = set(ABBREVIATIONS)
    sentences = PunktSentenceTokenizer(params)
    words = NLTKWordTokenizer()

    class Untrained(NLTKTokenizer, WordTokenizer):
        def __init__(self):
            WordTokenizer.__init__(self, "english")

        def word_tokenize(self, text: str) -> list[str]:  # what nltk.word_tokenize does, sentence by sentence
            return strip_strings([t for s in sentences.tokenize(text) for t in words.tokenize(s)])

        def sent_tokenize(self, text: str) -> list[str]:
            return strip_strings(sentences.tokenize(text))

        def span_tokenize(self, text: str) -> list[tuple[int, int]]:
            return list(sentences.span_tokenize(text))

    return Untrained(), "NLTK code with an untrained Punkt model + common abbreviations (punkt_tab not installed)"


def datatrove_decisions(name: str, texts: list[str], language) -> list[tuple[bool, str]]:
    from datatrove.data import Document
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    cls = {"c4": C4QualityFilter, "fineweb": FineWebQualityFilter, "gopher_quality": GopherQualityFilter,
           "gopher_repetition": GopherRepetitionFilter}[name]
    step = cls(language=language)
    out = []
    for i, text in enumerate(texts):
        try:
            d = step.filter(Document(text=text, id=str(i)))
        except Exception as error:  # datatrove divides by zero on some empty inputs
            d = (False, f"error:{type(error).__name__}")
        out.append((True, "") if d is True else (False, d[1]))
    return out


def our_decisions(name: str, texts: list[str]) -> list[tuple[bool, str]]:
    from curate.filters import build_filters

    (step,) = build_filters([name], {}, ["text"])
    return [(True, "") if d is True else (False, d[1].split(":", 1)[1]) for d in
            step.decide(pa.array(texts, pa.large_string()))]


def decided(text: str, ours: tuple[bool, str], theirs: tuple[bool, str], language) -> bool:
    """True for a disagreement that is one of the two deliberate differences (README, "Filters and datatrove")."""
    from datatrove.utils.text import split_into_words

    if ours[0] and theirs[1] == "gopher_below_alpha_threshold":
        return True
    if ours[0] and theirs[1].startswith("top_") and theirs[1].endswith("_gram"):
        n = int(theirs[1].split("_")[1])
        words = split_into_words(text, language)
        return max(Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1)).values()) == 1
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show", type=int, default=0, help="example documents to print per disagreement kind")
    parser.add_argument("--filters", default=",".join(FILTERS))
    args = parser.parse_args()
    try:
        import datatrove  # noqa: F401
        import nltk  # noqa: F401
    except ImportError:
        sys.exit("this benchmark needs datatrove and nltk: pip install -e '.[bench]'")
    from loguru import logger

    logger.remove()
    docs = corpus(args.seed)
    texts = [t for _, t in docs]
    language, label = nltk_tokenizer()
    print(f"{len(docs)} documents: {dict(Counter(s for s, _ in docs))}; datatrove tokenizer: {label}\n")
    rows = []
    for name in args.filters.split(","):
        started = time.perf_counter()
        ours = our_decisions(name, texts)
        ours_s = time.perf_counter() - started
        started = time.perf_counter()
        theirs = datatrove_decisions(name, texts, language)
        theirs_s = time.perf_counter() - started
        same = sum(a[0] == b[0] for a, b in zip(ours, theirs, strict=True))
        kinds = Counter()
        deliberate = 0
        examples: dict[tuple, list[int]] = {}
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            if a[0] != b[0]:
                deliberate += decided(texts[i], a, b, language)
                key = ("keep" if a[0] else f"drop:{a[1]}", "keep" if b[0] else f"drop:{b[1]}", docs[i][0])
                kinds[key] += 1
                examples.setdefault(key, []).append(i)
        rows.append((name, same / len(docs), (same + deliberate) / len(docs), sum(not a[0] for a in ours),
                     sum(not b[0] for b in theirs), ours_s, theirs_s))
        print(f"## {name}: agreement {same / len(docs):.3f} ({len(docs) - same} disagreements, {deliberate} of "
              "them deliberate)")
        for (a, b, source), count in kinds.most_common():
            print(f"  {count:5d}  ours {a:34s} datatrove {b:34s} [{source}]")
            for i in examples[(a, b, source)][:args.show]:
                print("        " + texts[i][:300].replace("\n", "\\n"))
        print()
    print("| filter | agreement | agreement but for deliberate differences | dropped (ours) | dropped (datatrove) "
          "| seconds (ours) | seconds (datatrove) | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for name, agreement, but_deliberate, ours_dropped, theirs_dropped, ours_s, theirs_s in rows:
        print(f"| {name} | {agreement:.3f} | {but_deliberate:.3f} | {ours_dropped} | {theirs_dropped} "
              f"| {ours_s:.2f} | {theirs_s:.2f} | {theirs_s / ours_s:.1f}x |")


if __name__ == "__main__":
    main()
