"""A fastText quality classifier trained on rows the user labels good and bad, as OpenThoughts did to pick
question sources; `wb select --strategy classifier` ranks rows by its probability of `good`.

    wb select train-classifier --good good.jsonl --bad bad.jsonl --output runs/clf [--field question]

Texts are lowercased and flattened to one line (fastText reads one example per line). Training is
single-threaded with a fixed seed, so the same data gives the same model. `fasttext-wheel` is an
optional extra: `pip install -e ".[classifier]"`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from workbench.config import RunOptions, option, validate
from workbench.errors import InputError, require
from workbench.rundir import RunResult
from workbench.runfiles import temp_path

MODEL_FILE = "classifier.bin"
GOOD, BAD = "__label__good", "__label__bad"
_SPACE = re.compile(r"\s+")


@dataclass
class TrainClassifierConfig(RunOptions):
    good: list[str] = option([], "sources of rows labelled good (files, directories, run directories)")
    bad: list[str] = option([], "sources of rows labelled bad")
    field: list[str] = option([], "fields to classify (default: the prompt side of the record kind)")
    epoch: int = option(25, "training epochs", min=1)
    lr: float = option(0.5, "learning rate", min=0.0)
    word_ngrams: int = option(2, "word n-grams used as features", min=1)
    dim: int = option(64, "embedding size", min=1)
    seed: int = option(0, "fastText's random seed")


def train_classifier(config: TrainClassifierConfig, output: str | os.PathLike) -> RunResult:
    """Train on the rows of `config.good` and `config.bad` and write the model into the run `output`
    (`wb select train-classifier`); the manifest's `classifier` holds counts and training accuracy."""
    from curate.fields import field_text, split_fields
    from curate.inputs import Inputs
    from workbench.rundir import RunDir

    validate(config)
    if not config.good or not config.bad:
        raise InputError("train-classifier needs --good and --bad sources")
    texts: dict[str, list[str]] = {}
    sources = []
    for label, specs in (("good", config.good), ("bad", config.bad)):
        inputs = Inputs(list(specs))
        prompts, responses = split_fields(inputs.fields(config.field))
        fields = prompts or responses
        texts[label] = [t for table in inputs.batches() for t in field_text(table, fields).to_pylist()]
        sources.extend(inputs.sources)
    with RunDir(output, "select-train-classifier", config, inputs=sources) as run:
        stats = train(texts["good"], texts["bad"], run.path / MODEL_FILE, config)
        manifest = run.finish(rows_in=len(texts["good"]) + len(texts["bad"]), classifier=stats)
    return RunResult.of(output, manifest)


def _fasttext():
    return require("fasttext", extra="classifier")


def one_line(texts: list[str]) -> list[str]:
    return [_SPACE.sub(" ", t or "").strip().lower() for t in texts]


def train(good: list[str], bad: list[str], path: Path, config: TrainClassifierConfig) -> dict:
    """Train on the two lists of texts, save the model at `path`, return training-set accuracy and counts."""
    if not good or not bad:
        raise InputError(f"train-classifier needs rows of both labels; got {len(good)} good and {len(bad)} bad")
    fasttext = _fasttext()
    rng = np.random.default_rng(config.seed)
    lines = [f"{GOOD} {t}" for t in one_line(good)] + [f"{BAD} {t}" for t in one_line(bad)]
    order = rng.permutation(len(lines))
    train_file = path.with_name(f".{path.name}.train.txt")
    train_file.write_text("".join(lines[i] + "\n" for i in order))
    try:
        model = fasttext.train_supervised(str(train_file), epoch=config.epoch, lr=config.lr, dim=config.dim,
                                          wordNgrams=config.word_ngrams, seed=config.seed, thread=1, verbose=0,
                                          minCount=1)
    finally:
        train_file.unlink(missing_ok=True)
    tmp = temp_path(path)
    model.save_model(str(tmp))
    os.replace(tmp, path)
    good_p = probabilities(model, good)
    bad_p = probabilities(model, bad)
    accuracy = (float((good_p >= 0.5).sum()) + float((bad_p < 0.5).sum())) / (len(good) + len(bad))
    return {"good_rows": len(good), "bad_rows": len(bad), "train_accuracy": round(accuracy, 4)}


def load(path: str | Path):
    """The fastText model at `path` (a file, or a `train-classifier` run directory)."""
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.is_file():
        raise InputError(f"{path}: no classifier here; train one with `wb select train-classifier`")
    fasttext = _fasttext()
    try:  # the class itself: `fasttext.load_model` prints a warning on every call
        return fasttext.FastText._FastText(model_path=str(path))
    except ValueError as exc:
        raise InputError(f"{path}: not a fastText model ({exc})") from None


def probabilities(model, texts: list[str] | pa.Array) -> np.ndarray:
    """P(good) for each text. fastText's multi-line predict is used with k=1 (its probability arrays are
    garbled under numpy 2 for k > 1); with two labels P(good) is the top probability or its complement."""
    if isinstance(texts, pa.Array):
        texts = texts.to_pylist()
    if not texts:
        return np.zeros(0)
    labels, probs = model.f.multilinePredict(one_line(texts), 1, 0.0, "strict")
    top = np.array([float(p[0]) if len(p) else 0.5 for p in probs])
    is_good = np.array([bool(ls) and ls[0] == GOOD for ls in labels])
    return np.clip(np.where(is_good, top, 1.0 - top), 0.0, 1.0)
