"""`wb tinker serve` driven by the real `tinker` SDK (pinned 0.38.x): supervised and RL steps, log-probs
against the training core, checkpoints, two clients, out-of-order chunks, metering and bad input.

One server (a subprocess on a free 127.0.0.1 port, over the tiny model) serves the whole module and is
stopped by its pid at the end. It is told to split forward_backward into chunks of 2 datums, so every
4-datum call arrives as out-of-order chunks (the SDK sends chunk 2 before chunk 1).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tinker
import torch
from tinker import types

from tests.net import free_port
from workbench.rundir import Usage

TEXTS = ["To be, or not to be, that is the question.", "The cat sat on the mat by the door.",
         "All the world's a stage, and all the men and women merely players.", "Hello world, hello again."]
PRICES = {"prefill": 0.5, "sample": 2.0, "train": 3.0}
BUDGET = 12000
KEY, OTHER, ADMIN_KEY = "tml-dummy", "tml-other-tenant", "tml-admin-key"  # tenants key1, key2; the admin
ROOT = Path(__file__).resolve().parents[2]



@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    """The service as a subprocess: (base URL, run dir, model path); stopped by pid afterwards."""
    tmp = tmp_path_factory.mktemp("tinker")
    (tmp / "prices.yaml").write_text("\n".join(f"{k}: {v}" for k, v in PRICES.items()))
    port, run = free_port(), tmp / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "workbench.cli", "tinker", "serve", "--base-model", str(tiny_model_dir),
           "--port", str(port), "--output", str(run), "--chunk-len", "2", "--prices", str(tmp / "prices.yaml"),
           "--token-budget", str(BUDGET), "--poll-seconds", "5", "--api-key", KEY, OTHER, "--admin-key", ADMIN_KEY]
    proc = subprocess.Popen(cmd, env=env, stdout=open(tmp / "server.log", "w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited: {(tmp / 'server.log').read_text()[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.2)
    else:
        os.kill(proc.pid, signal.SIGKILL)
        raise RuntimeError("the server did not start within 120 s")
    with pytest.MonkeyPatch.context() as mp:  # what a user exports before running a Tinker script
        mp.setenv("TINKER_API_KEY", KEY)
        mp.setenv("TINKER_TELEMETRY", "0")
        yield url, run, str(tiny_model_dir)
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    # a stopped server leaves a finished run whose manifest holds the usage totals (what `wb runs --usage` reads)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["stage"] == "tinker-serve" and manifest["usage"]["trained_tokens"] > 0


@pytest.fixture(scope="module")
def service(server):
    client = tinker.ServiceClient(base_url=server[0], api_key=KEY)
    yield client
    client.close("success").result()


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def _stats(server, key: str = KEY) -> dict:
    import urllib.request

    req = urllib.request.Request(server[0] + "/api/v1/server_stats", headers={"X-API-Key": key})
    with urllib.request.urlopen(req) as resp:
        return json.loads(resp.read())


def sl_data(tokenizer) -> list[types.Datum]:
    data = []
    for text in TEXTS:
        ids = tokenizer.encode(text)
        data.append(types.Datum(model_input=types.ModelInput.from_ints(ids[:-1]),
                                loss_fn_inputs={"target_tokens": ids[1:], "weights": [1.0] * (len(ids) - 1)}))
    return data


def n_tokens(data: list[types.Datum]) -> int:
    return sum(d.model_input.length for d in data)


def new_client(service, base, seed=0, rank=8):
    return service.create_lora_training_client(base_model=base, rank=rank, seed=seed).result()


def test_supervised_loop_loss_falls_with_out_of_order_chunks(service, server, tokenizer):
    tc = new_client(service, server[2])
    info = tc.get_info()
    assert info.is_lora and info.lora_rank == 8 and info.model_data.tokenizer_id == str(Path(server[2]).resolve())
    assert tc.get_tokenizer().encode(TEXTS[0]) == tokenizer.encode(TEXTS[0])  # from the local path, no hub
    data = sl_data(tokenizer)
    losses = []
    for _ in range(8):
        fb = tc.forward_backward(data, "cross_entropy")
        opt = tc.optim_step(types.AdamParams(learning_rate=5e-3))
        result = fb.result()
        assert opt.result().metrics["grad_norm:mean"] > 0
        # 4 datums in chunks of 2, merged back in order: each output matches its datum's length
        assert [o["logprobs"].shape[0] for o in result.loss_fn_outputs] == [d.model_input.length for d in data]
        nll = -sum(float(np.sum(o["logprobs"].to_numpy())) for o in result.loss_fn_outputs)
        assert result.metrics["loss:sum"] == pytest.approx(nll, rel=1e-5)
        losses.append(result.metrics["loss:sum"])
    # LoRA on attention and MLP only (the tiny model's lm_head is tied): a slower fall than with lm_head
    assert losses[-1] < 0.93 * losses[0] and all(b < a for a, b in zip(losses, losses[1:], strict=False))
    assert _stats(server)["out_of_order_accepted"] >= 8  # chunk 2 of every call arrived before chunk 1, and was run after it


def test_cross_entropy_with_k_targets_per_position_dense_and_csr(service, server, tokenizer):
    tc = new_client(service, server[2], seed=8)
    ids = tokenizer.encode(TEXTS[1])
    one = types.Datum(model_input=types.ModelInput.from_ints(ids[:-1]),
                      loss_fn_inputs={"target_tokens": ids[1:], "weights": [1.0] * (len(ids) - 1)})
    targets = torch.tensor([[t, 5, 6, 7] for t in ids[1:]])
    weights = torch.zeros(len(ids) - 1, 4)
    weights[:, 0] = 1.0
    sparse_weights = types.TensorData.from_torch_sparse(weights)
    assert sparse_weights.sparse_crow_indices is not None  # really sent as CSR
    k = types.Datum(model_input=types.ModelInput.from_ints(ids[:-1]),
                    loss_fn_inputs={"target_tokens": types.TensorData.from_torch(targets), "weights": sparse_weights})
    out = tc.forward([one, k], "cross_entropy").result()
    flat, multi = (o["logprobs"].to_numpy() for o in out.loss_fn_outputs)
    assert multi.shape == (len(ids) - 1, 4)
    np.testing.assert_allclose(multi[:, 0], flat, atol=1e-6)
    assert out.metrics["loss:sum"] == pytest.approx(-2 * float(flat.sum()), rel=1e-5)
    bad = types.Datum(model_input=types.ModelInput.from_ints(ids[:-1]),
                      loss_fn_inputs={"target_tokens": types.TensorData.from_torch(targets), "weights": [1.0] * (len(ids) - 1)})
    with pytest.raises(tinker.RequestFailedError, match="weights has shape"):
        tc.forward([bad], "cross_entropy").result()


def _core_logprobs(model_dir: str, tokens: list[int]) -> np.ndarray:
    from trainers.client import ClientConfig, TrainingClient

    core = TrainingClient.load(ClientConfig(model=model_dir))
    ids = torch.tensor([tokens])
    mask = torch.ones_like(ids)
    mask[0, 0] = 0
    return core.compute_logprobs({"input_ids": ids, "position_ids": torch.arange(len(tokens))[None],
                                  "loss_mask": mask}).numpy()


def test_compute_logprobs_equal_the_core_and_the_trainer(service, server, tokenizer):
    tokens = tokenizer.encode(TEXTS[2])
    base = service.create_sampling_client(base_model=server[2]).result()
    got = base.compute_logprobs(types.ModelInput.from_ints(tokens)).result()
    assert got[0] is None and len(got) == len(tokens)
    np.testing.assert_allclose(np.array(got[1:]), _core_logprobs(server[2], tokens), atol=1e-5)
    tail = base.compute_logprobs(types.ModelInput.from_ints(tokens), prompt_logprobs_last_n=3).result()
    assert tail[:-3] == [None] * (len(tokens) - 3) and tail[-3:] == pytest.approx(got[-3:], abs=1e-6)
    with pytest.raises(tinker.RequestFailedError, match="topk_prompt_logprobs is not supported"):
        base.sample(prompt=types.ModelInput.from_ints(tokens), num_samples=1, include_prompt_logprobs=True,
                    topk_prompt_logprobs=2, sampling_params=types.SamplingParams(max_tokens=1)).result()
    # a snapshot of a trained client scores tokens exactly as that client's forward pass does
    tc = new_client(service, server[2], seed=3)
    tc.forward_backward(sl_data(tokenizer), "cross_entropy").result()
    tc.optim_step(types.AdamParams(learning_rate=1e-2)).result()
    snap = tc.save_weights_and_get_sampling_client().result()
    scored = snap.compute_logprobs(types.ModelInput.from_ints(tokens)).result()
    datum = types.Datum(model_input=types.ModelInput.from_ints(tokens[:-1]), loss_fn_inputs={"target_tokens": tokens[1:]})
    trainer = tc.forward([datum], "cross_entropy").result().loss_fn_outputs[0]["logprobs"].to_numpy()
    np.testing.assert_allclose(np.array(scored[1:]), trainer, atol=1e-5)
    assert np.abs(np.array(scored[1:]) - np.array(got[1:])).max() > 1e-3  # and it is not the base model


def rl_batch(tokenizer, prompt_text: str, sampler, n=4, max_tokens=6, seed=5):
    """Sampled completions as importance-sampling datums; reward = share of completion tokens that are even."""
    prompt = tokenizer.encode(prompt_text)
    res = sampler.sample(prompt=types.ModelInput.from_ints(prompt), num_samples=n,
                         sampling_params=types.SamplingParams(max_tokens=max_tokens, temperature=1.0, seed=seed)).result()
    assert len(res.sequences) == n and all(s.sequence_id for s in res.sequences)
    rewards = np.array([np.mean([t % 2 == 0 for t in s.tokens]) for s in res.sequences])
    adv = rewards - rewards.mean()
    data = []
    for s, a in zip(res.sequences, adv, strict=True):
        full = prompt + s.tokens
        pad = len(prompt) - 1
        data.append(types.Datum(model_input=types.ModelInput.from_ints(full[:-1]), loss_fn_inputs={
            "target_tokens": full[1:], "logprobs": [0.0] * pad + list(s.logprobs),
            "advantages": [0.0] * pad + [float(a)] * len(s.tokens)}))
    return res, adv, data


def test_importance_sampling_step_on_sampled_tokens(service, server, tokenizer):
    tc = new_client(service, server[2], seed=1)
    sampler = tc.save_weights_and_get_sampling_client().result()
    res, adv, data = rl_batch(tokenizer, "The question is", sampler)
    assert all(s.stop_reason in ("stop", "length") and len(s.logprobs) == len(s.tokens) for s in res.sequences)
    out = tc.forward_backward(data, "importance_sampling").result()
    # on-policy: the trainer's log-probs equal the sampler's, every ratio is 1 and the loss is -sum(A)
    for o, s in zip(out.loss_fn_outputs, res.sequences, strict=True):
        np.testing.assert_allclose(o["logprobs"].to_numpy()[-len(s.tokens):], s.logprobs, atol=1e-4)
    expected = -sum(a * len(s.tokens) for a, s in zip(adv, res.sequences, strict=True))
    assert out.metrics["loss:sum"] == pytest.approx(expected, abs=1e-3)
    before = tc.forward(data, "cross_entropy").result()
    tc.optim_step(types.AdamParams(learning_rate=5e-3)).result()
    after = tc.forward(data, "cross_entropy").result()
    best, worst = int(np.argmax(adv)), int(np.argmin(adv))

    def seq_logp(result, i):
        return float(result.loss_fn_outputs[i]["logprobs"].to_numpy()[-len(res.sequences[i].tokens):].sum())

    assert seq_logp(after, best) > seq_logp(before, best) and seq_logp(after, worst) < seq_logp(before, worst)


def test_sampling_params_seed_stop_and_greedy(service, server, tokenizer):
    sampler = service.create_sampling_client(base_model=server[2]).result()
    prompt = types.ModelInput.from_ints(tokenizer.encode("To be, or not"))

    def draw(**params):
        return sampler.sample(prompt=prompt, num_samples=2, sampling_params=types.SamplingParams(**params)).result().sequences

    first, again = draw(max_tokens=8, seed=11), draw(max_tokens=8, seed=11)
    assert [s.tokens for s in first] == [s.tokens for s in again]  # seeded
    unseeded = [[s.tokens for s in draw(max_tokens=8)] for _ in range(2)]
    assert unseeded[0] != unseeded[1]  # unseeded requests do not replay one generator state
    top = draw(max_tokens=8, top_k=3, top_p=0.9, seed=2)
    assert all(len(s.tokens) == len(s.logprobs) >= 1 for s in top)
    greedy = draw(max_tokens=8, temperature=0.0)
    assert greedy[0].tokens == greedy[1].tokens and len(greedy[0].tokens) == 8 and greedy[0].stop_reason == "length"
    stop = greedy[0].tokens[3]
    cut = draw(max_tokens=8, temperature=0.0, stop=[stop])[0]
    end = greedy[0].tokens.index(stop) + 1
    assert cut.stop_reason == "stop" and cut.tokens == greedy[0].tokens[:end] and len(cut.logprobs) == end
    text = tokenizer.decode(greedy[0].tokens)
    by_string = draw(max_tokens=8, temperature=0.0, stop=[text[len(text) // 2:][:3]])[0]
    assert by_string.stop_reason == "stop" and len(by_string.tokens) < 8
    with pytest.raises(tinker.RequestFailedError, match="max_tokens must be in"):
        draw(max_tokens=100000)


def _expected_loss(loss_fn, logp, q, adv, config):
    ratio = np.exp(logp - q)
    if loss_fn == "ppo":
        clipped = np.clip(ratio, config.get("clip_low_threshold", 0.8), config.get("clip_high_threshold", 1.2))
        return -np.minimum(ratio * adv, clipped * adv).sum()
    if loss_fn == "cispo":
        clipped = np.clip(ratio, config.get("clip_low_threshold", 0.0), config.get("clip_high_threshold", 4.0))
        return -(clipped * logp * adv).sum()
    return -(logp * adv - 0.5 * config["beta"] * (logp - q) ** 2).sum()  # dro


@pytest.mark.parametrize("loss_fn,config", [("ppo", None), ("ppo", {"clip_low_threshold": 0.9, "clip_high_threshold": 1.05}),
                                            ("cispo", {"clip_high_threshold": 1.1}), ("dro", {"beta": 0.5})])
def test_rl_losses_match_their_formulas(service, server, tokenizer, loss_fn, config):
    tc = new_client(service, server[2], seed=2)
    _, _, data = rl_batch(tokenizer, "All the world", tc.save_weights_and_get_sampling_client().result(), n=2, seed=9)
    rng = np.random.default_rng(0)
    for d in data:  # an off-policy sampler: ratios away from 1, so the clips are active
        q = d.loss_fn_inputs["logprobs"].to_numpy()
        d.loss_fn_inputs["logprobs"] = types.TensorData.from_numpy((q + rng.normal(0, 0.3, q.shape)).astype(np.float32))
    out = tc.forward(data, loss_fn, loss_fn_config=config).result()
    expected = sum(_expected_loss(loss_fn, o["logprobs"].to_numpy().astype(np.float64),
                                  d.loss_fn_inputs["logprobs"].to_numpy(), d.loss_fn_inputs["advantages"].to_numpy(),
                                  config or {}) for d, o in zip(data, out.loss_fn_outputs, strict=True))
    assert out.metrics["loss:sum"] == pytest.approx(expected, rel=1e-4, abs=1e-5)
    tc.forward_backward(data, loss_fn, loss_fn_config=config).result()  # and it backpropagates
    assert tc.optim_step(types.AdamParams(learning_rate=1e-3)).result().metrics["grad_norm:mean"] > 0


def test_save_state_then_resume_gives_the_same_next_step(service, server, tokenizer):
    data = sl_data(tokenizer)
    a = new_client(service, server[2], seed=4)
    for _ in range(2):
        a.forward_backward(data, "cross_entropy")
        a.optim_step(types.AdamParams(learning_rate=1e-2)).result()
    path = a.save_state("step2").result().path
    assert path == f"tinker://{a.model_id}/weights/step2"
    # under the tenant of key 1: another key's tenant never reads or writes this directory
    assert (server[1] / "checkpoints" / "key1" / a.model_id.replace(":", "_") / "weights" / "step2" / "state.pt").is_file()
    at_save = a.forward(data, "cross_entropy").result().metrics["loss:sum"]
    weights_only = service.create_training_client_from_state(path).result()  # fresh Adam state
    assert weights_only.forward(data, "cross_entropy").result().metrics["loss:sum"] == pytest.approx(at_save, abs=1e-5)
    b = service.create_training_client_from_state_with_optimizer(path).result()
    assert b.model_id != a.model_id
    for client in (a, b):  # the same step from the same weights and Adam moments
        client.forward_backward(data, "cross_entropy").result()
        client.optim_step(types.AdamParams(learning_rate=1e-2)).result()
    la = a.forward(data, "cross_entropy").result().metrics["loss:sum"]
    lb = b.forward(data, "cross_entropy").result().metrics["loss:sum"]
    assert la == pytest.approx(lb, abs=1e-5)
    # sampler weights: a saved path opens a sampling client that scores like the live client
    sampler_path = a.save_weights_for_sampler("final").result().path
    assert sampler_path.endswith("/sampler_weights/final")
    tokens = tokenizer.encode(TEXTS[0])
    saved = service.create_sampling_client(model_path=sampler_path).result().compute_logprobs(types.ModelInput.from_ints(tokens)).result()
    live = a.save_weights_and_get_sampling_client().result().compute_logprobs(types.ModelInput.from_ints(tokens)).result()
    np.testing.assert_allclose(saved[1:], live[1:], atol=1e-6)
    with pytest.raises(tinker.RequestFailedError, match="without optimizer state"):
        service.create_training_client_from_state_with_optimizer(sampler_path).result()


def test_custom_loss_runs_as_forward_then_weighted_backward(service, server, tokenizer):
    data = sl_data(tokenizer)
    builtin, custom = new_client(service, server[2], seed=9), new_client(service, server[2], seed=9)

    def nll(batch, logprobs):  # the same loss as cross_entropy, written client-side
        loss = sum(-(lp * torch.tensor(d.loss_fn_inputs["weights"].tolist())).sum() for d, lp in zip(batch, logprobs, strict=True))
        return loss, {"custom_nll": float(loss.detach())}

    out = custom.forward_backward_custom(data, nll).result()
    ref = builtin.forward_backward(data, "cross_entropy").result()
    assert out.metrics["loss:sum"] == pytest.approx(ref.metrics["loss:sum"], rel=1e-5)
    assert out.metrics["custom_nll"] == pytest.approx(ref.metrics["loss:sum"], rel=1e-5)
    for client in (builtin, custom):
        client.optim_step(types.AdamParams(learning_rate=1e-2)).result()
    after = [c.forward(data, "cross_entropy").result().metrics["loss:sum"] for c in (builtin, custom)]
    assert after[0] == pytest.approx(after[1], rel=1e-5) and after[0] < ref.metrics["loss:sum"]


def test_two_clients_train_separate_adapters(service, server, tokenizer):
    data = sl_data(tokenizer)
    a, b = new_client(service, server[2], seed=5), new_client(service, server[2], seed=5)
    start_a = a.forward(data, "cross_entropy")
    start_b = b.forward(data, "cross_entropy")
    assert start_a.result().metrics["loss:sum"] == pytest.approx(start_b.result().metrics["loss:sum"], abs=1e-6)
    futures = []
    for _ in range(3):  # interleaved on the server: A trains, B only evaluates
        futures += [a.forward_backward(data, "cross_entropy"), a.optim_step(types.AdamParams(learning_rate=1e-2)),
                    b.forward(data, "cross_entropy")]
    results = [f.result() for f in futures]
    b_losses = [r.metrics["loss:sum"] for r in results[2::3]]
    assert b_losses == pytest.approx([start_b.result().metrics["loss:sum"]] * 3, abs=1e-6)
    assert a.forward(data, "cross_entropy").result().metrics["loss:sum"] < 0.97 * b_losses[0]


def test_usage_counts_the_tokens_sent(server, tokenizer):
    from trainers.tinker_service.usage import fetch_usage, format_usage

    sc = tinker.ServiceClient(base_url=server[0], api_key=KEY)
    try:
        tc = new_client(sc, server[2], seed=6)
        data = sl_data(tokenizer)
        tc.forward_backward(data, "cross_entropy").result()
        tc.forward(data[:1], "cross_entropy").result()
        tc.optim_step(types.AdamParams()).result()
        prompt = tokenizer.encode("Hello world")
        sampler = sc.create_sampling_client(base_model=server[2]).result()
        res = sampler.sample(prompt=types.ModelInput.from_ints(prompt), num_samples=3,
                             sampling_params=types.SamplingParams(max_tokens=4, seed=1)).result()
        session = tc.model_id.split(":")[0]
        report = fetch_usage(server[0], KEY)
        s = report["sessions"][session]
        model = s["models"][tc.model_id]
        # create + 2 forward_backward chunks + 1 forward + optim_step
        assert model["requests"] == 5 and model["trained_tokens"] == n_tokens(data)
        assert model["prefill_tokens"] == data[0].model_input.length
        sampled = sum(len(q.tokens) for q in res.sequences)
        samp = next(u for m, u in s["models"].items() if ":sample:" in m)
        assert (samp["requests"], samp["prefill_tokens"], samp["sampled_tokens"]) == (1, len(prompt), sampled)
        total = s["usage"]
        assert total["trained_tokens"] == n_tokens(data) and total["sampled_tokens"] == sampled
        assert total["prefill_tokens"] == len(prompt) + data[0].model_input.length
        cost = (total["prefill_tokens"] * PRICES["prefill"] + sampled * PRICES["sample"]
                + total["trained_tokens"] * PRICES["train"]) / 1e6
        assert total["cost_usd"] == pytest.approx(cost, abs=1e-6)
        assert session in format_usage(report) and tc.model_id in format_usage(report)
        deadline = time.monotonic() + 10  # the usage file follows (flushed at most once a second)
        while time.monotonic() < deadline:
            saved = json.loads((server[1] / "usage.json").read_text())
            if saved["sessions"].get(session, {}).get("usage") == total:
                break
            time.sleep(0.3)
        assert saved["sessions"][session]["usage"] == total
        assert set(saved["usage"]) == set(Usage.__dataclass_fields__)  # the run manifest's usage shape
        from workbench.runs import run_info, usage_totals

        info = run_info(server[1])  # the live server is a running run in `wb runs`, with its usage so far
        assert info["state"] == "running" and info["stage"] == "tinker-serve"
        assert info["trained_tokens"] == saved["usage"]["trained_tokens"] > 0
        assert usage_totals([info])["tinker-serve"]["trained_tokens"] == info["trained_tokens"]
        clients = _stats(server)["training_clients"]
    finally:
        sc.close("success").result()
    deadline = time.monotonic() + 10  # finishing the session frees its adapter (usage stays)
    while _stats(server)["training_clients"] != clients - 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _stats(server)["training_clients"] == clients - 1
    assert fetch_usage(server[0], KEY)["sessions"][session]["usage"] == total


def test_bad_requests_fail_their_future_and_the_budget_ends_a_session(server, tokenizer):
    sc = tinker.ServiceClient(base_url=server[0], api_key=KEY)
    try:
        tc = new_client(sc, server[2], seed=7)
        data = sl_data(tokenizer)
        with pytest.raises(tinker.RequestFailedError, match="stable_reinforce.*not supported"):
            tc.forward_backward(data, "stable_reinforce").result()
        bad = types.Datum(model_input=types.ModelInput.from_ints([1, 2, 99999]),
                          loss_fn_inputs={"target_tokens": [2, 3, 4], "weights": [1.0, 1.0, 1.0]})
        with pytest.raises(tinker.RequestFailedError, match="outside the vocabulary"):
            tc.forward_backward([bad], "cross_entropy").result()
        with pytest.raises(tinker.RequestFailedError, match="ppo needs loss_fn_inputs\\['logprobs'\\]"):
            tc.forward_backward(data, "ppo").result()
        assert tc.forward(data, "cross_entropy").result().metrics["loss:sum"] > 0  # still usable
        long = tokenizer.encode(" ".join(TEXTS * 8))[:400]
        big = [types.Datum(model_input=types.ModelInput.from_ints(long[:-1]),
                           loss_fn_inputs={"target_tokens": long[1:], "weights": [1.0] * (len(long) - 1)})] * 4
        with pytest.raises(tinker.RequestFailedError, match="token budget"):
            for _ in range(10):  # 1596 tokens a call against a budget of 12000 per session
                tc.forward(big, "cross_entropy").result()
    finally:
        sc.close("success").result()


def test_cli_errors_are_one_line(tmp_path, capsys, server):
    from workbench.cli import main

    bad = tmp_path / "prices.yaml"
    bad.write_text("prefill: -1\n")
    port = int(server[0].rsplit(":", 1)[1])
    assert main(["tinker", "serve", "--base-model", server[2], "--prices", str(bad)]) == 2
    assert "prefill must be a non-negative number" in capsys.readouterr().err
    assert main(["tinker", "serve", "--base-model", server[2], "--port", str(port)]) == 2
    assert "already in use" in capsys.readouterr().err
    assert main(["tinker", "usage", "--url", f"http://127.0.0.1:{free_port()}"]) == 2
    assert "cannot reach the service" in capsys.readouterr().err
    assert main(["tinker", "usage", "--url", server[0], "--json", "--api-key", "tml-not-a-key"]) == 2
    assert "HTTP 401" in capsys.readouterr().err
    assert main(["tinker", "usage", "--url", server[0], "--json", "--api-key", ADMIN_KEY]) == 0
    served = json.loads(capsys.readouterr().out)
    free = tmp_path / "free.yaml"
    free.write_text("train: 0\nprefill: 0\nsample: 0\n")
    assert main(["tinker", "usage", "--url", server[0], "--json", "--prices", str(free), "--api-key", ADMIN_KEY]) == 0
    repriced = json.loads(capsys.readouterr().out)
    assert served["usage"]["cost_usd"] > 0 and repriced["usage"]["cost_usd"] == 0.0
    assert repriced["usage"]["trained_tokens"] == served["usage"]["trained_tokens"]


def _example(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"tinker_example_{name}", ROOT / "examples" / "tinker" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_sl_loop_runs_and_resumes(server, tmp_path):
    sl_loop = _example("sl_loop")
    args = ["--base-url", server[0], "--model-name", server[2], "--log-path", str(tmp_path), "--batch-size", "4",
            "--learning-rate", "5e-3", "--lora-rank", "8", "--max-length", "511", "--save-every", "2"]
    first = sl_loop.main([*args, "--max-steps", "3"])
    assert [r["step"] for r in first] == [0, 1, 2] and all(r["datums"] > 0 and r["train_nll"] > 0 for r in first)
    names = [json.loads(line)["name"] for line in (tmp_path / "checkpoints.jsonl").read_text().splitlines()]
    assert names == ["000002", "final"]
    again = sl_loop.main([*args, "--max-steps", "4"])  # resumes from the last state: only step 3 runs
    assert [r["step"] for r in again] == [3]
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 4


def test_example_rl_loop_trains_on_sampled_groups(server, tmp_path):
    rl_loop = _example("rl_loop")
    logged = rl_loop.main(["--base-url", server[0], "--model-name", server[2], "--log-path", str(tmp_path),
                           "--batch-size", "2", "--group-size", "3", "--max-tokens", "8", "--lora-rank", "8",
                           "--max-steps", "2", "--reward", "overlap", "--save-every", "0"])
    assert [r["step"] for r in logged] == [0, 1]
    assert all(r["datums"] + 3 * r["skipped_groups"] == 6 for r in logged) and sum(r["datums"] for r in logged) > 0
    assert rl_loop.get_reward("math", "so it is 72.\n#### 72", "... #### 72") == 1.0


def _call(server, path: str, body: dict | bytes | None = None, key: str | None = KEY, method: str = "POST",
          content_type: str = "application/json", headers: dict | None = None) -> tuple[int, dict]:
    """One raw HTTP request to the service: (status, JSON answer)."""
    import urllib.error
    import urllib.request

    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    h = {"Content-Type": content_type, **({"X-API-Key": key} if key else {}), **(headers or {})}
    req = urllib.request.Request(server[0] + "/api/v1/" + path, data=data if method == "POST" else None,
                                 headers=h, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_tenants_see_and_touch_only_their_own_sessions(server, tokenizer):
    """Key 2 tries everything key 1's session was exposed to before: usage, create_model in it, saving
    over and loading its checkpoint, its futures, samplers and model info, ending it. The admin sees all."""
    alice = tinker.ServiceClient(base_url=server[0], api_key=KEY)
    bob = tinker.ServiceClient(base_url=server[0], api_key=OTHER)
    try:
        a = new_client(alice, server[2], seed=11)
        a_session = a.model_id.split(":")[0]
        path = a.save_state("mine").result().path
        ckpt = server[1] / "checkpoints" / "key1" / a.model_id.replace(":", "_") / "weights" / "mine" / "state.pt"
        before = ckpt.read_bytes()
        b = new_client(bob, server[2], seed=12)
        b_session = b.model_id.split(":")[0]
        # usage: each tenant sees only its own sessions; the admin sees both
        assert a_session not in fetch_usage_as(server, OTHER)["sessions"]
        assert b_session in fetch_usage_as(server, OTHER)["sessions"]
        assert {a_session, b_session} <= set(fetch_usage_as(server, ADMIN_KEY)["sessions"])
        # bob cannot create a model in alice's session, save over her model, read its info or load her state
        status, answer = _call(server, "create_model", {"session_id": a_session, "model_seq_id": 99,
                                                        "base_model": server[2]}, key=OTHER)
        assert (status, answer["category"]) == (400, "user") and "unknown session_id" in answer["error"]
        status, answer = _call(server, "save_weights", {"model_id": a.model_id, "path": "mine"}, key=OTHER)
        assert status == 400 and "unknown model_id" in answer["error"]
        assert _call(server, "get_info", {"model_id": a.model_id}, key=OTHER)[0] == 400
        with pytest.raises(tinker.RequestFailedError, match="no checkpoint at"):
            bob.create_training_client_from_state(path).result()
        assert ckpt.read_bytes() == before
        # alice's futures and samplers do not exist for bob
        status, handle = _call(server, "optim_step", {"model_id": a.model_id, "adam_params": {"learning_rate": 0.0}})
        assert status == 200
        assert _call(server, "retrieve_future", handle, key=OTHER)[0] == 404
        assert "metrics" in _call(server, "retrieve_future", handle)[1]
        status, created = _call(server, "create_sampling_session", {"session_id": a_session, "sampling_session_seq_id": 7,
                                                                    "base_model": server[2]})
        sid = created["sampling_session_id"]
        assert _call(server, f"samplers/{sid}", method="GET")[0] == 200
        assert _call(server, f"samplers/{sid}", key=OTHER, method="GET")[0] == 404
        status, answer = _call(server, "asample", {"sampling_session_id": sid, "num_samples": 1,
                                                   "prompt": {"chunks": [{"type": "encoded_text", "tokens": [1, 2]}]},
                                                   "sampling_params": {"max_tokens": 2}}, key=OTHER)
        assert status == 400 and "unknown sampling_session_id" in answer["error"]
        # nor can bob end alice's session: it stays alive and her model keeps working
        _call(server, f"sessions/{a_session}/finish", {}, key=OTHER)
        assert _call(server, "session_heartbeat", {"session_id": a_session}, key=KEY)[0] == 200
        assert _call(server, "session_heartbeat", {"session_id": a_session}, key=OTHER)[0] == 410
        assert a.forward(sl_data(tokenizer), "cross_entropy").result().metrics["loss:sum"] > 0
        assert _stats(server, OTHER)["training_clients"] == 1
        # the admin may look at alice's model; a wrong key gets nothing
        assert _call(server, "get_info", {"model_id": a.model_id}, key=ADMIN_KEY)[0] == 200
        assert _call(server, "get_info", {"model_id": a.model_id}, key="tml-not-a-key")[0] == 401
        assert _call(server, "healthz", key=None, method="GET")[0] == 401
    finally:
        alice.close("success").result()
        bob.close("success").result()


def fetch_usage_as(server, key: str) -> dict:
    from trainers.tinker_service.usage import fetch_usage

    return fetch_usage(server[0], key)


def test_non_json_and_cross_origin_requests_are_refused(server):
    session = {"tags": [], "sdk_version": "0.38.0"}
    # what a page on another site can send without a preflight: a text/plain POST
    status, answer = _call(server, "create_session", json.dumps(session).encode(), content_type="text/plain")
    assert status == 415 and "application/json" in answer["error"]
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}):
        assert _call(server, "create_session", session, headers=headers)[0] == 403
        assert _call(server, "healthz", key=None, method="GET", headers=headers)[0] == 403
    assert _call(server, "forward_backward", b"\x00", content_type="application/json")[0] == 415
    status, answer = _call(server, "create_session", b"{not json")
    assert status == 400 and answer["error"] == "the request body is not JSON"
    # the same origin (a page this server served, were there one) and the SDK (no Origin) are let through
    host = server[0].split("//", 1)[1]
    assert _call(server, "create_session", session, headers={"Origin": f"http://{host}"})[0] == 200


def test_lora_leaves_a_tied_lm_head_alone(service, server, tokenizer):
    tc = new_client(service, server[2], seed=13)  # the SDK asks for train_unembed=True by default
    path = tc.save_weights_for_sampler("tied").result().path
    saved = server[1] / "checkpoints" / "key1" / tc.model_id.replace(":", "_") / "sampler_weights" / "tied" / "state.pt"
    keys = list(torch.load(saved, weights_only=True)["adapter"])
    assert path.endswith("/tied") and keys and not any("lm_head" in k for k in keys)
    assert any("q_proj" in k for k in keys) and any("down_proj" in k for k in keys)
    assert "tie_word_embeddings" not in (server[1].parent / "server.log").read_text()  # no peft warning
