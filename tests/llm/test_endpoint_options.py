"""The endpoint options every command that calls a model takes: one set of defaults, one builder
(`llm.options.endpoint_spec`), backend resolution from `--base-url`, and the roles (judge, strong/weak,
select's rater, the OPD teacher) reaching their model with the command's options."""

from __future__ import annotations

import dataclasses

import pytest

from curate.select import SelectConfig, rater_spec
from distill_data.config import DistillConfig
from evals.config import EvalConfig
from llm import EndpointSpec, RetryPolicy
from llm.options import AUTO, ENDPOINT_OPTIONS, EndpointOptions, endpoint_spec, retry_policy
from llm.verify.judge import judge_spec
from prefs.config import PrefsConfig
from prefs.sides import side_specs
from trainers.opd import OPDConfig, teacher_endpoint
from workbench.cli import build_parser, command_path, main
from workbench.config import build_config
from workbench.errors import InputError

URL = "http://127.0.0.1:9/v1"
COMMANDS = (DistillConfig, PrefsConfig, EvalConfig, SelectConfig, OPDConfig)  # every command that calls a model


def test_every_command_has_the_same_endpoint_defaults():
    shared = {f.name: f for f in dataclasses.fields(EndpointOptions)}
    defaults = {name: getattr(EndpointOptions(), name) for name in ENDPOINT_OPTIONS}
    assert defaults["timeout"] == 1800.0 and defaults["max_concurrency"] == 64 and defaults["max_attempts"] == 8
    for cls in COMMANDS:
        cfg = cls()
        assert {name: getattr(cfg, name) for name in ENDPOINT_OPTIONS} == defaults, cls.__name__
        fields = {f.name: f for f in dataclasses.fields(cls)}
        # not re-declared, not even with the same default: the help text and ranges are the shared ones
        assert all(fields[n].metadata == shared[n].metadata for n in ENDPOINT_OPTIONS), cls.__name__
        assert retry_policy(cfg) == RetryPolicy(8, 1.0, 60.0)
        # every model a command names has its endpoints and an auto backend, declared the one way
        for name, f in fields.items():
            if name.endswith("backend"):
                assert getattr(cfg, name) == AUTO and f.metadata["choices"] == [AUTO, "openai", "openai-batch", "hf", "vllm"], name
            if name.endswith("base_url"):
                assert getattr(cfg, name) == [] and f.metadata["help"].startswith("OpenAI-compatible"), name


def test_every_command_builds_the_same_spec_for_the_same_model():
    """Each command's own spec function, for one served model: equal specs, so equal knobs."""
    distill = DistillConfig(model="m", base_url=[URL])
    evals = EvalConfig(model="m", base_url=[URL])
    specs = {
        "distill": endpoint_spec(distill, distill.model, distill.base_url, distill.backend),
        "distill judge": judge_spec(DistillConfig(model="x", base_url=["http://other/v1"], judge_model="m",
                                                  judge_base_url=[URL]), endpoint_spec(distill, "x", [URL])),
        "eval": endpoint_spec(evals, evals.model, evals.base_url, evals.backend),
        "eval judge": judge_spec(EvalConfig(judge_model="m"), endpoint_spec(evals, "x", [URL])),
        "prefs strong": side_specs(PrefsConfig(strong_model="m", strong_base_url=[URL]))[0][1],
        "prefs weak": side_specs(PrefsConfig(strong_model="s", strong_base_url=[URL], weak_model="m",
                                             weak_base_url=[URL]))[1][1],
        "select rater": rater_spec(SelectConfig(judge_model="m", judge_base_url=[URL])),
        "opd teacher": teacher_endpoint(OPDConfig(teacher=URL, teacher_model="m")),
    }
    want = EndpointSpec("m", (URL,), "openai", "OPENAI_API_KEY", 1800.0, 64, None, None, None)
    assert {k: v for k, v in specs.items() if v != want} == {}


def test_the_backend_follows_the_base_url(tmp_path):
    (tmp_path / "config.json").write_text("{}")  # a model directory, as far as choosing the backend goes
    opts = EndpointOptions()
    assert endpoint_spec(opts, "m", [URL]).backend == "openai"
    assert endpoint_spec(opts, str(tmp_path), []).backend == "hf"
    assert endpoint_spec(opts, "org/name", [], "vllm").backend == "vllm"  # vLLM may load a hub name
    with pytest.raises(InputError, match=r"^--model 'm': not a local model directory; to call a served model "
                                         r"give --base-url"):
        endpoint_spec(opts, "m", [])
    with pytest.raises(InputError, match="^--backend openai needs at least one --base-url"):
        endpoint_spec(opts, "m", [], "openai")
    # a role without endpoints of its own goes where the main model does; with its own, over HTTP
    main_local = endpoint_spec(opts, str(tmp_path), [])
    assert endpoint_spec(opts, "", [], role="judge", like=main_local) == main_local
    assert endpoint_spec(opts, "j", ["http://j/v1"], role="judge", like=main_local).backend == "openai"
    served = endpoint_spec(opts, "m", [URL])
    judge = endpoint_spec(opts, "j", [], role="judge", like=served)
    assert (judge.model, judge.base_urls, judge.backend) == ("j", (URL,), "openai")
    assert endpoint_spec(opts, str(tmp_path), [], "hf", role="judge", like=served).base_urls == ()


@pytest.mark.parametrize("argv, flags", [
    (["eval", "--model", "m", "--benchmark", "gsm8k", "--backend", "hf", "--base-url", URL], ("--backend hf",
                                                                                              "--base-url")),
    (["eval", "--model", "m", "--benchmark", "PROMPTS", "--base-url", URL, "--verify", "judge", "--judge-model", "j",
      "--judge-backend", "vllm", "--judge-base-url", URL], ("--judge-backend vllm", "--judge-base-url")),
    (["distill", "PROMPTS", "--model", "m", "--backend", "hf", "--base-url", URL], ("--backend hf", "--base-url")),
    (["prefs", "PROMPTS", "--strong-model", "s", "--strong-backend", "hf", "--strong-base-url", URL,
      "--weak-model", "w", "--weak-base-url", URL], ("--strong-backend hf", "--strong-base-url")),
    (["select", "SRC", "--strategy", "difficulty", "--keep", "1", "--judge-model", "j", "--judge-backend", "hf",
      "--judge-base-url", URL], ("--judge-backend hf", "--judge-base-url")),
])
def test_an_in_process_backend_with_a_base_url_is_one_line(argv, flags, tmp_path, capsys):
    (tmp_path / "p.jsonl").write_text('{"prompt": "hi"}\n')
    argv = [str(tmp_path / "p.jsonl") if a in ("PROMPTS", "SRC") else a for a in argv]
    assert main([*argv, "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and all(f in err for f in flags), err
    assert "runs the model in-process" in err and not (tmp_path / "out").exists()


def _parsed(cls, *argv: str):
    return build_config(cls, build_parser(command_path(list(argv))).parse_args(list(argv)))


KNOBS = ["--rpm", "120", "--tpm", "90000", "--min-concurrency", "2", "--max-concurrency", "8", "--timeout", "30",
         "--api-key-env", "MY_KEY", "--max-attempts", "3", "--retry-base", "0.5", "--retry-max", "4"]


def test_select_rater_and_opd_teacher_take_the_shared_endpoint_flags():
    select = _parsed(SelectConfig, "select", "src.jsonl", "--output", "out", "--strategy", "difficulty", "--keep", "1",
                     "--judge-model", "j", "--judge-base-url", URL, *KNOBS)
    opd = _parsed(OPDConfig, "train", "opd", "--model", "student", "--prompts", "p.jsonl", "--teacher", URL,
                  "--teacher-model", "j", *KNOBS)
    want = EndpointSpec("j", (URL,), "openai", "MY_KEY", 30.0, 8, 2, 120.0, 90000.0)
    assert rater_spec(select) == want and teacher_endpoint(opd) == want
    assert retry_policy(select) == retry_policy(opd) == RetryPolicy(3, 0.5, 4.0)
    assert teacher_endpoint(OPDConfig(teacher="runs/teacher/model")) is None  # a local teacher: no endpoint


def test_the_opd_teacher_prompt_tokens_are_priced_with_price_in():
    from trainers.loop import train_usage

    usage = train_usage(OPDConfig(price_in=2.0, price_trained=1.0), trained_tokens=10**6, prefill_tokens=500_000)
    assert usage.cost_usd == pytest.approx(1.0 + 1.0) and usage.prefill_tokens == 500_000
    assert train_usage(OPDConfig(), trained_tokens=10**6, prefill_tokens=500_000).cost_usd is None
