"""A separate generator for RL: an OpenAI-compatible server that samples while the trainer trains.

    gen = RemoteGenerator("http://127.0.0.1:8000/v1", tokenizer)   # token: $WB_WEIGHTS_TOKEN
    groups = gen.sample_groups(prompts, n=8, max_new_tokens=64, temperature=1.0, top_p=1.0, seed=3)
    gen.push_weights(path, version=4)          # POST /v1/weights {"path", "version"} with the bearer token

Completions come back as token ids with the generator's log-probs (`logprobs` + vLLM's
`return_tokens_as_token_ids`; `wb serve` also sends a `token_id` per entry) and the version of the
weights that produced them (`weight_version`, from `wb serve --allow-weight-updates`). The trainer writes
its weights with `WeightFiles` (one `torch.save` file per version, atomically, the newest two kept) in a
directory under the server's `--weights-dir`; the token `wb serve` printed goes in $WB_WEIGHTS_TOKEN.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from llm.weight_updates import TOKEN_ENV
from workbench.errors import InputError
from workbench.runfiles import temp_path


class RemoteGenerator:
    """Samples groups from `url` (the server's `/v1` base) and pushes weights to it with `token` (default:
    $WB_WEIGHTS_TOKEN). Its first push starts a new version sequence on the server (`restart`), so a new or
    resumed run may begin below the versions an earlier run pushed; later pushes must increase."""

    def __init__(self, url: str, tokenizer, timeout: float = 600.0, max_parallel: int = 16,
                 eos_ids: set[int] | None = None, token: str | None = None):
        import httpx

        from llm.eos import eos_ids as model_eos_ids

        self.url = url.rstrip("/")
        self.tokenizer = tokenizer
        # the ids that end a completion (the policy's generation config may list several, as Llama 3 does)
        self.eos_ids = eos_ids or model_eos_ids(None, tokenizer)
        self.http = httpx.Client(timeout=timeout)
        self.max_parallel = max_parallel
        self.token = token or os.environ.get(TOKEN_ENV)
        self.pushed = -1  # the last version pushed: the version of completions whose server does not say
        self.restart = True  # until the first push lands
        try:
            models = self.http.get(f"{self.url}/models").raise_for_status().json()["data"]
        except Exception as exc:  # noqa: BLE001 - connection refused, bad JSON, 404: all the user's URL
            raise InputError(f"--generator {url}: cannot list models at {self.url}/models ({type(exc).__name__}: "
                             f"{exc}); start one with `wb serve MODEL --allow-weight-updates`") from None
        self.model = models[0]["id"]

    def close(self) -> None:
        self.http.close()

    def push_weights(self, path: str | os.PathLike, version: int) -> int:
        """Ask the server to load `path` as `version`; returns the version it reports."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        body = {"path": str(Path(path).resolve()), "version": version, "restart": self.restart}
        try:
            resp = self.http.post(f"{self.url}/weights", json=body, headers=headers)
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"--generator {self.url}: weight update failed ({type(exc).__name__}: {exc})") from None
        if resp.status_code in (404, 405):
            raise InputError(f"--generator {self.url}: the server does not accept weight updates; start it with "
                             "`wb serve MODEL --allow-weight-updates --weights-dir DIR`")
        if resp.status_code == 401:
            raise InputError(f"--generator {self.url}: the server wants its weights token; set {TOKEN_ENV} to the "
                             "token `wb serve` printed at start (or gave with --weights-token)")
        if resp.status_code != 200:
            raise InputError(f"--generator {self.url}: weight update refused ({resp.status_code}: {resp.text[:300]})")
        self.pushed = int(resp.json()["version"])
        self.restart = False
        return self.pushed

    def _one(self, messages: list[dict], n: int, max_new_tokens: int, temperature: float, top_p: float,
             seed: int | None) -> dict:
        body = {"model": self.model, "messages": messages, "n": n, "max_tokens": max_new_tokens,
                "temperature": temperature, "top_p": top_p, "seed": seed, "logprobs": True,
                "return_tokens_as_token_ids": True}
        try:
            resp = self.http.post(f"{self.url}/chat/completions", json=body)
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"--generator {self.url}: request failed ({type(exc).__name__}: {exc})") from None
        if resp.status_code != 200:
            raise InputError(f"--generator {self.url}: chat completion refused ({resp.status_code}: "
                             f"{resp.text[:300]})")
        return resp.json()

    def sample_groups(self, prompts: list[tuple[list[int], dict]], n: int, max_new_tokens: int, temperature: float,
                      top_p: float, seed: int | None = None) -> list:
        """One Group per (prompt ids, row), its `n` completions sampled by the server concurrently (the
        server batches them); each Group's `version` is the weight version the server reports."""
        from workbench.records import as_messages

        def ask(item):
            return self._one(as_messages(item[1]["prompt"], "user", "prompt"), n, max_new_tokens, temperature,
                             top_p, seed)

        with ThreadPoolExecutor(max(1, min(self.max_parallel, len(prompts)))) as pool:
            answers = list(pool.map(ask, prompts))
        return [self._group(ids, row, answer, max_new_tokens) for (ids, row), answer in zip(prompts, answers,
                                                                                           strict=True)]

    def _group(self, prompt_ids: list[int], row: dict, answer: dict, max_new_tokens: int):
        from trainers.rollouts import Group

        eos = self.tokenizer.eos_token_id
        group = Group(prompt_ids, row, [], [], [], version=int(answer.get("weight_version", self.pushed)))
        for choice in answer.get("choices", []):
            entries = ((choice.get("logprobs") or {}).get("content")) or []
            tokens = [token_id(e, self.tokenizer) for e in entries]
            logps = [float(e["logprob"]) for e in entries]
            if choice.get("finish_reason") == "stop" and (not tokens or tokens[-1] not in self.eos_ids) and \
                    len(tokens) < max_new_tokens:
                tokens.append(eos)  # a server that leaves EOS out of logprobs: train on it, gap unknown
                logps.append(math.nan)
            group.tokens.append(tokens)
            group.sampler_logps.append(logps)
            group.truncated.append(not tokens or tokens[-1] not in self.eos_ids)
        return group


def token_id(entry: dict, tokenizer) -> int:
    """The token id of one chat logprobs entry: `token_id` (wb serve), "token_id:N" (vLLM's
    return_tokens_as_token_ids), else the token string looked up in the vocabulary."""
    if isinstance(entry.get("token_id"), int):
        return entry["token_id"]
    token = entry.get("token") or ""
    if token.startswith("token_id:"):
        return int(token.split(":", 1)[1])
    ids = tokenizer.convert_tokens_to_ids(token)
    if not isinstance(ids, int) or ids == tokenizer.unk_token_id:
        raise InputError(f"generator returned a token {token!r} without its id; ask it for "
                         "return_tokens_as_token_ids (vLLM) or use `wb serve`")
    return ids


class WeightFiles:
    """Writes the policy's weights for the generator: `dir/v{version:06d}.pt`, atomically; keeps the newest
    `keep` files (the one being loaded must not vanish)."""

    def __init__(self, directory: str | os.PathLike, keep: int = 2):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.keep = keep

    def write(self, model, version: int) -> Path:
        import torch

        path = self.dir / f"v{version:06d}.pt"
        tmp = temp_path(path)
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
        os.replace(tmp, path)
        for old in sorted(self.dir.glob("v*.pt"))[: -self.keep]:
            old.unlink(missing_ok=True)
        return path


@contextlib.contextmanager
def local_generator(model_dir: str | os.PathLike, weights_dir: str | os.PathLike, threads: int = 1,
                    max_batch: int = 64, startup_seconds: float = 90.0) -> Iterator[str]:
    """Run `wb serve MODEL --allow-weight-updates --weights-dir DIR` in another process on a free 127.0.0.1
    port (torch pinned to `threads`), yield its /v1 URL, stop it by pid. For tests, benchmarks and a
    one-machine try. The token is $WB_WEIGHTS_TOKEN, else a new one set in this process's environment for
    the duration (so a `RemoteGenerator` made inside finds it)."""
    import secrets
    import socket
    import subprocess
    import sys
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = Path(__file__).resolve().parents[1]
    own_token = TOKEN_ENV not in os.environ
    if own_token:
        os.environ[TOKEN_ENV] = secrets.token_urlsafe(32)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
           "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", str(model_dir), "--port", str(port),
                             "--max-batch", str(max_batch), "--allow-weight-updates", "--weights-dir",
                             str(weights_dir)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + startup_seconds
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"wb serve exited: {proc.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"wb serve did not start within {startup_seconds:.0f} s")
            time.sleep(0.2)
        yield url
    finally:
        if own_token:
            os.environ.pop(TOKEN_ENV, None)
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
