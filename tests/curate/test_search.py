"""`wb search`: a copy of a row is its own nearest hit with a tiny local encoder (and again from the cached
row embeddings); an OpenAI-compatible embeddings endpoint on loopback ranks by its vectors; bad options name
the flag."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from curate.search import SearchConfig, search
from workbench.cli import main
from workbench.errors import InputError


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory, tiny_tokenizer):
    from demo.tiny_models import save_tiny_encoder

    return save_tiny_encoder(tmp_path_factory.mktemp("enc") / "tiny-bert", tiny_tokenizer)


@pytest.fixture
def rows(tmp_path):
    texts = ["the cat sat on the mat", "stock prices fell sharply today", "a recipe for lemon cake",
             "the dog slept by the door", "rain is expected over the weekend"]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps({"id": f"t{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
    return path


def test_a_copy_of_a_row_finds_it_first_and_the_cache_is_reused(rows, tiny_encoder, tmp_path, capsys):
    cache = tmp_path / "cache"
    config = SearchConfig(query="a recipe for lemon cake", encoder=str(tiny_encoder), top=2, cache=str(cache))
    hits = search(config, str(rows))
    assert [h["rank"] for h in hits] == [1, 2]
    assert (hits[0]["id"], hits[0]["row"], hits[0]["text"]) == ("t2", 2, "a recipe for lemon cake")
    assert hits[0]["score"] == pytest.approx(1.0, abs=1e-4) and hits[1]["score"] < hits[0]["score"]
    chunks = sorted(cache.glob("*.npy"))
    assert len(chunks) == 1
    before = chunks[0].stat().st_mtime_ns
    assert main(["search", str(rows), "--query", "stock prices fell sharply today", "--encoder", str(tiny_encoder),
                 "--top", "1", "--json", "--cache", str(cache)]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == "t1"
    assert chunks[0].stat().st_mtime_ns == before  # the rows were not embedded again


class _Embeddings(BaseHTTPRequestHandler):
    """Vectors by letter counts of 'aeiou': a toy encoder whose nearest neighbours are easy to predict."""

    def do_POST(self):  # noqa: N802 (the http.server name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        data = [{"index": i, "embedding": [t.count(c) + 0.01 for c in "aeiou"]} for i, t in enumerate(body["input"])]
        reply = json.dumps({"data": data, "model": body["model"]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


def test_an_embeddings_endpoint_ranks_by_its_vectors(rows):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Embeddings)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        hits = search(SearchConfig(query="stock prices fell sharply today", encoder=url, encoder_model="toy",
                                   top=1), str(rows))
        assert hits[0]["id"] == "t1" and hits[0]["score"] == pytest.approx(1.0, abs=1e-4)
        with pytest.raises(InputError, match="needs --encoder-model"):
            search(SearchConfig(query="x", encoder=url), str(rows))
    finally:
        server.shutdown()
        server.server_close()


def test_search_refuses_a_missing_query_or_encoder(rows, tmp_path):
    with pytest.raises(InputError, match="--query is required"):
        search(SearchConfig(encoder="x"), str(rows))
    with pytest.raises(InputError, match="cannot load it as a transformers model"):
        search(SearchConfig(query="x", encoder=str(tmp_path / "nothing")), str(rows))
