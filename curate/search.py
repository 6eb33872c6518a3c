"""Semantic search over a source: the rows nearest in meaning to a query, by cosine of encoder embeddings.

    wb search SOURCE --query "refund policy" --encoder MODEL [--top 20] [--field messages] [--cache DIR] [--json]

The encoder is what `wb semdedup` uses (a transformers model directory or hub id, mean-pooled and
L2-normalised), or an OpenAI-compatible embeddings endpoint (`--encoder http://host:port/v1
--encoder-model NAME`). Row embeddings are computed in chunks by `semdedup.embed_inputs`; with `--cache DIR`
they are kept there, named by a hash of their texts and the encoder, so the next query over the same source
embeds only the query (the app's Data browser passes a folder per run). `--json` prints one JSON object per
hit (rank, row, id, score, text) for programs.
"""

from __future__ import annotations

import json
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from curate.fields import field_text
from curate.inputs import Inputs
from curate.semdedup import Encoder, SemDedupConfig, embed_inputs
from workbench.config import option, validate
from workbench.errors import InputError

TEXT_CHARS = 300  # characters of each hit's text in the output


@dataclass
class SearchConfig:
    query: str = option("", "what to look for, in words")
    encoder: str = option("", "encoder: a transformers model directory or hub id, or an OpenAI-compatible base URL "
                              "(http://host:port/v1) serving /embeddings")
    encoder_model: str = option("", "the model name to send with an embeddings endpoint")
    field: list[str] = option([], "fields to embed: columns, `messages`, `messages.prompt`, `messages.response` "
                                  "(default: by record kind)")
    top: int = option(20, "hits to return", min=1, max=10_000)
    batch_size: int = option(32, "texts per encoder forward pass (or per endpoint request)", min=1)
    max_length: int = option(512, "tokens per text (longer texts are truncated)", min=8)
    device: str = option("auto", "cpu, cuda, or auto (cuda when available)")
    cache: str = option("", "folder to keep row embeddings in between searches (default: none, re-embed)")


class EndpointEncoder:
    """Embeddings from an OpenAI-compatible `POST {base_url}/embeddings`, L2-normalised."""

    def __init__(self, base_url: str, model: str, batch_size: int, timeout: float = 120.0):
        if not model:
            raise InputError(f"--encoder {base_url}: an embeddings endpoint needs --encoder-model NAME")
        self.url, self.model, self.batch_size, self.timeout = base_url.rstrip("/") + "/embeddings", model, batch_size, timeout

    def embed(self, texts: list[str]) -> np.ndarray:
        parts = [self._request(texts[i:i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
        x = np.concatenate(parts) if parts else np.zeros((0, 1), dtype=np.float32)
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    def _request(self, texts: list[str]) -> np.ndarray:
        body = json.dumps({"model": self.model, "input": [t or " " for t in texts]}).encode()
        request = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                data = json.loads(response.read())["data"]
            return np.array([d["embedding"] for d in sorted(data, key=lambda d: d["index"])], dtype=np.float32)
        except urllib.error.HTTPError as exc:
            raise InputError(f"--encoder {self.url}: HTTP {exc.code} ({exc.read()[:200].decode('utf-8', 'replace')})") from None
        except (urllib.error.URLError, OSError) as exc:
            raise InputError(f"--encoder {self.url}: {getattr(exc, 'reason', exc)}") from None
        except (KeyError, TypeError, ValueError):
            raise InputError(f"--encoder {self.url}: the reply is not an embeddings list (data[].embedding)") from None


def open_encoder(config: SearchConfig) -> Encoder | EndpointEncoder:
    if config.encoder.startswith(("http://", "https://")):
        return EndpointEncoder(config.encoder, config.encoder_model, config.batch_size)
    return Encoder(config.encoder, config.max_length, config.batch_size, config.device)


def search(config: SearchConfig, source: str) -> list[dict]:
    """The `top` rows of `source` nearest to the query: rank, row (position in the source), id, cosine score
    and the start of the embedded text, best first. `InputError` for a missing query or encoder, or one
    that cannot be loaded or reached."""
    validate(config)
    if not config.query.strip():
        raise InputError("--query is required: the words to search for")
    if not config.encoder:
        raise InputError("--encoder is required: a transformers model directory or an embeddings endpoint URL")
    inputs = Inputs([str(source)])
    fields = inputs.fields(config.field)
    encoder = None

    def make_encoder() -> Encoder | EndpointEncoder:
        nonlocal encoder
        encoder = encoder or open_encoder(config)
        return encoder

    # the chunk names hash the encoder string: an endpoint's model is part of it
    key = f"{config.encoder}#{config.encoder_model}" if config.encoder_model else config.encoder
    chunking = SemDedupConfig(encoder=key, max_length=config.max_length, batch_size=config.batch_size,
                              device=config.device)
    with tempfile.TemporaryDirectory(prefix="wb-search-") as scratch:
        folder = Path(config.cache) if config.cache else Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        x = embed_inputs(inputs, fields, chunking, folder, make_encoder=make_encoder)
    q = make_encoder().embed([config.query])[0]
    scores = x @ q if len(x) else np.zeros(0, dtype=np.float32)
    best = np.argsort(-scores, kind="stable")[:config.top]
    wanted = {int(i): rank for rank, i in enumerate(best)}
    hits: list[dict] = [{}] * len(best)
    offset = 0
    for table in inputs.batches():  # a second pass for the ids and texts of the hits only
        rows = [i for i in range(offset, offset + table.num_rows) if i in wanted]
        if rows:
            part = table.take([i - offset for i in rows])
            for i, row_id, text in zip(rows, part["id"].to_pylist(), field_text(part, fields).to_pylist(), strict=True):
                hits[wanted[i]] = {"rank": wanted[i] + 1, "row": i, "id": row_id, "score": round(float(scores[i]), 4),
                                   "text": (text or "")[:TEXT_CHARS]}
        offset += table.num_rows
    return hits
