"""Parity of the curate quality filters with datatrove's, defaults on both sides, and with `datatrove_compat`.

    pip install -e '.[bench]'            # datatrove, and spaCy (datatrove 0.10's English word splitter)
    python bench/filters_parity.py                   # agreement tables and the reasons behind each disagreement
    python bench/filters_parity.py --show 2          # plus two example documents per disagreement kind

Builds a mixed corpus from the bundled data (tinyshakespeare passages: verse; GSM8K question + answer:
prose; MATH-500: math; chunks of Python stdlib files: code) plus synthetic junk (menus, keyword lists,
repeated lines, lorem ipsum, bullet and ellipsis pages, symbol soup, short answers), runs `wb curate`'s
filters and datatrove's C4QualityFilter, FineWebQualityFilter, GopherQualityFilter and
GopherRepetitionFilter on every document, and prints per filter and text kind the share of documents on
which both decide the same (in brackets: also counting the two deliberate Gopher differences as
agreement), for our defaults and for `datatrove_compat: true` (Gopher filters), then each kind of
disagreement as (ours, datatrove, source) with its count, and the seconds each side took on one core (a
shared machine: compare the ratio).

datatrove 0.10 splits English words with spaCy's blank English tokenizer (`SpaCyTokenizer("en")`; its
NLTK tokenizer serves other languages), and C4 sentences with spaCy's rule-based sentencizer; both sides
run with their defaults, so the reference is datatrove as a user installs it.
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


def datatrove_decisions(name: str, texts: list[str]) -> list[tuple[bool, str]]:
    from datatrove.data import Document
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    cls = {"c4": C4QualityFilter, "fineweb": FineWebQualityFilter, "gopher_quality": GopherQualityFilter,
           "gopher_repetition": GopherRepetitionFilter}[name]
    step = cls()
    out = []
    for i, text in enumerate(texts):
        try:
            d = step.filter(Document(text=text, id=str(i)))
        except Exception as error:  # datatrove divides by zero on some empty inputs
            d = (False, f"error:{type(error).__name__}")
        out.append((True, "") if d is True else (False, d[1]))
    return out


def our_decisions(name: str, texts: list[str], compat: bool = False) -> list[tuple[bool, str]]:
    from curate.filters import build_filters

    (step,) = build_filters([name], {name: {"datatrove_compat": True}} if compat else {}, ["text"])
    return [(True, "") if d is True else (False, d[1].split(":", 1)[1]) for d in
            step.decide(pa.array(texts, pa.large_string()))]


def decided(text: str, ours: tuple[bool, str], theirs: tuple[bool, str]) -> bool:
    """True for a disagreement that is one of the two deliberate differences (README, "Filters and datatrove")."""
    from datatrove.utils.text import split_into_words

    if ours[0] and theirs[1] == "gopher_below_alpha_threshold":
        return True
    if ours[0] and theirs[1].startswith("top_") and theirs[1].endswith("_gram"):
        n = int(theirs[1].split("_")[1])
        words = split_into_words(text)
        return max(Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1)).values()) == 1
    return False


KINDS = {"shakespeare": "verse", "gsm8k": "prose", "math500": "math", "stdlib": "code", "junk": "junk"}
COMPAT = ("gopher_quality", "gopher_repetition")


def compare(name: str, docs: list[tuple[str, str]], theirs: list[tuple[bool, str]], compat: bool, show: int) -> dict:
    """Our decisions (defaults or compat) against datatrove's: counts per text kind, printed reasons."""
    texts = [t for _, t in docs]
    started = time.perf_counter()
    ours = our_decisions(name, texts, compat)
    seconds = time.perf_counter() - started
    row = {"filter": name, "mode": "datatrove_compat" if compat else "defaults", "seconds": seconds,
           "dropped": sum(not a[0] for a in ours), "kinds": {}}
    kinds: Counter = Counter()
    examples: dict[tuple, list[int]] = {}
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        kind = KINDS[docs[i][0]]
        cell = row["kinds"].setdefault(kind, [0, 0, 0])  # documents, same decision, same but for deliberate
        cell[0] += 1
        cell[1] += a[0] == b[0]
        cell[2] += a[0] == b[0] or (not compat and decided(texts[i], a, b))
        if a[0] != b[0]:
            key = ("keep" if a[0] else f"drop:{a[1]}", "keep" if b[0] else f"drop:{b[1]}", kind)
            kinds[key] += 1
            examples.setdefault(key, []).append(i)
    same = sum(c[1] for c in row["kinds"].values())
    print(f"## {name} ({row['mode']}): agreement {same / len(docs):.3f} ({len(docs) - same} disagreements)")
    for (a, b, kind), count in kinds.most_common():
        print(f"  {count:5d}  ours {a:34s} datatrove {b:34s} [{kind}]")
        for i in examples[(a, b, kind)][:show]:
            print("        " + texts[i][:300].replace("\n", "\\n"))
    print()
    return row


def print_table(rows: list[dict], theirs_seconds: dict[str, float], theirs_dropped: dict[str, int]) -> None:
    kinds = list(KINDS.values())
    print("Agreement per text kind (in brackets: counting the deliberate Gopher differences as agreement):\n")
    print("| filter | mode | all | " + " | ".join(kinds) + " | dropped (ours) | dropped (datatrove) | seconds (ours) "
          "| seconds (datatrove) | ratio |")
    print("|" + "---|" * (len(kinds) + 8))
    for r in rows:
        cells = []
        for cell in [[sum(c[k] for c in r["kinds"].values()) for k in range(3)]] + [r["kinds"][k] for k in kinds]:
            both = f"{cell[1] / cell[0]:.3f}"
            cells.append(both if cell[2] == cell[1] else f"{both} ({cell[2] / cell[0]:.3f})")
        t = theirs_seconds[r["filter"]]
        print(f"| {r['filter']} | {r['mode']} | " + " | ".join(cells) + f" | {r['dropped']} | "
              f"{theirs_dropped[r['filter']]} | {r['seconds']:.2f} | {t:.2f} | {t / r['seconds']:.1f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show", type=int, default=0, help="example documents to print per disagreement kind")
    parser.add_argument("--filters", default=",".join(FILTERS))
    args = parser.parse_args()
    try:
        import datatrove  # noqa: F401
        import spacy  # noqa: F401
    except ImportError:
        sys.exit("this benchmark needs datatrove and spaCy: pip install -e '.[bench]'")
    from loguru import logger

    logger.remove()
    docs = corpus(args.seed)
    texts = [t for _, t in docs]
    print(f"{len(docs)} documents: {dict(Counter(KINDS[s] for s, _ in docs))}\n")
    rows, theirs_seconds, theirs_dropped = [], {}, {}
    for name in args.filters.split(","):
        started = time.perf_counter()
        theirs = datatrove_decisions(name, texts)
        theirs_seconds[name] = time.perf_counter() - started
        theirs_dropped[name] = sum(not b[0] for b in theirs)
        for compat in (False, True) if name in COMPAT else (False,):
            rows.append(compare(name, docs, theirs, compat, args.show))
    print_table(rows, theirs_seconds, theirs_dropped)


if __name__ == "__main__":
    main()
