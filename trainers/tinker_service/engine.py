"""The model side of the service: one frozen base model, a LoRA adapter and an optimiser per training client.

Every training client is one peft adapter on the shared base model plus a `trainers.client.TrainingClient`
(the training core) whose AdamW optimiser holds only that adapter's parameters, so clients never touch
each other's weights or moments. Samplers read the base model (adapter disabled), a saved sampler
checkpoint, or a snapshot of a live client, loaded into one spare adapter slot. All methods but the
`*_info` ones run on the scheduler's single worker thread, so at most one thing uses the model at a time.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from trainers.client import ClientConfig, TrainingClient, load_tokenizer
from trainers.losses import token_logprobs
from trainers.tinker_service.losses import check_loss, per_token_loss
from trainers.tinker_service.metering import Meter
from trainers.tinker_service.protocol import (
    ForwardBackwardRequest,
    RequestError,
    check_name,
    encode_forward_backward_output,
    encode_sample_response,
    get_field,
    parse_tinker_path,
    show,
)
from trainers.tinker_service.sampling import generate
from workbench.runfiles import temp_path

LORA_ALPHA = 32  # fixed, as in "LoRA without regret": the learning rate then transfers across ranks
SAMPLER_ADAPTER = "sampler"
CHECKPOINT_FORMAT = "wb-tinker-adapter/1"


@dataclass(frozen=True)
class LoraSpec:
    rank: int = 32
    train_mlp: bool = True
    train_attn: bool = True
    train_unembed: bool = True
    seed: int | None = None

    @classmethod
    def parse(cls, raw: dict | None) -> LoraSpec:
        if raw is not None and not isinstance(raw, dict):
            raise RequestError("lora_config must be an object")
        raw = {f"lora_config.{k}": v for k, v in (raw or {}).items()}
        spec = cls(get_field(raw, "lora_config.rank", int, 32, lo=1, hi=1024),
                   get_field(raw, "lora_config.train_mlp", bool, True),
                   get_field(raw, "lora_config.train_attn", bool, True),
                   get_field(raw, "lora_config.train_unembed", bool, True),
                   get_field(raw, "lora_config.seed", int, None, lo=0, hi=2**63 - 1))
        if not (spec.train_mlp or spec.train_attn or spec.train_unembed):
            raise RequestError("lora_config: at least one of train_mlp, train_attn, train_unembed must be true")
        return spec

    def shape(self) -> tuple:
        """What decides the adapter's parameter shapes (the seed does not)."""
        return (self.rank, self.train_mlp, self.train_attn, self.train_unembed)


@dataclass
class Slot:
    """One training client: its adapter on the shared model and its optimiser (in `client`)."""

    model_id: str
    session_id: str
    adapter: str
    spec: LoraSpec
    client: TrainingClient
    steps: int = 0


@dataclass
class SamplerSource:
    sampler_id: str
    session_id: str
    spec: LoraSpec | None = None  # None: the base model
    weights: dict | None = None
    model_path: str | None = None


def _target_logprobs(logits_T_V: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(target) per position: targets [T] -> [T], or K targets per position [T, K] -> [T, K]."""
    if targets.ndim == 1:
        return token_logprobs(logits_T_V, targets)
    logits = logits_T_V.float()
    return logits.gather(-1, targets) - torch.logsumexp(logits, dim=-1, keepdim=True)


def check_optimizer(config: dict | None) -> None:
    """Only AdamW is served (Tinker's default); refuse another optimizer by name."""
    if config is not None and not isinstance(config, dict):
        raise RequestError("optimizer_config must be an object")
    kind = (config or {}).get("type", "adamw")
    if kind != "adamw":
        raise RequestError(f"optimizer {show(kind)} is not supported here; use the default Adam (AdamOptimizerConfig)")


def safe_dir(name: str) -> str:
    """`name` as one path component: dots go too, so no name climbs out of its directory."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name) or "_"


class Engine:
    """The served model and everything trained or sampled on it (see the module docstring)."""

    def __init__(self, base_model: str, served_name: str, checkpoint_dir: Path, meter: Meter,
                 device: str | None = None, dtype: str = "auto", micro_batch_tokens: int = 8192,
                 adapt_tied_unembed: bool = False, threads: int = 0):
        from transformers import AutoModelForCausalLM

        from llm.runtime import apply_threads, record_load, resolve_dtype
        from workbench.errors import InputError

        self.base_path = base_model
        self.name = served_name
        self.names = {served_name, base_model, str(Path(base_model).resolve()) if Path(base_model).exists() else base_model}
        self.checkpoint_dir = checkpoint_dir
        self.meter = meter
        self.micro_batch_tokens = micro_batch_tokens
        self.tokenizer = load_tokenizer(base_model)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        threads, dtype = apply_threads(threads), resolve_dtype(dtype, str(self.device))
        try:
            model = AutoModelForCausalLM.from_pretrained(base_model, dtype=getattr(torch, dtype))
        except OSError as exc:
            raise InputError(f"{base_model}: cannot load the model ({exc})") from None
        record_load(base_model, dtype, threads, str(self.device))
        self.base = model.to(self.device).eval().requires_grad_(False)
        self.vocab = int(self.base.get_output_embeddings().weight.shape[0])
        # a tied lm_head is the input embedding: LoRA on it would adapt a layer peft cannot keep tied
        self.tied_unembed = self.base.get_output_embeddings().weight is self.base.get_input_embeddings().weight
        self.adapt_tied_unembed = adapt_tied_unembed
        self.max_context = int(getattr(self.base.config, "max_position_embeddings", 4096))
        # listed before peft wraps them: afterwards the names point at LoRA layers
        self._linear_names = [n for n, m in self.base.named_modules() if isinstance(m, torch.nn.Linear)]
        self.peft = None  # the PeftModel, once the first adapter exists
        self.slots: dict[str, Slot] = {}
        self.samplers: dict[str, SamplerSource] = {}
        self._sampler_loaded: tuple | None = None  # (sampler id, spec shape) in the spare adapter slot
        self._adapters = 0

    # ---- answered directly on the event loop --------------------------------------------------------

    def check_base(self, base_model: str | None) -> None:
        if base_model is not None and base_model not in self.names:
            raise RequestError(f"base_model {show(base_model)} is not served here; this server serves {self.name!r}")

    def tokenizer_id(self) -> str:
        p = Path(self.base_path)
        return str(p.resolve()) if p.exists() else self.base_path

    def model_info(self, model_id: str) -> dict:
        slot = self.slot(model_id)
        return {"type": "get_info", "model_id": model_id, "is_lora": True, "lora_rank": slot.spec.rank,
                "model_name": self.name, "model_data": {"arch": self.base.config.model_type, "model_name": self.name,
                                                        "tokenizer_id": self.tokenizer_id()}}

    def slot(self, model_id: str) -> Slot:
        slot = self.slots.get(model_id)
        if slot is None:
            raise RequestError(f"unknown model_id {show(model_id)}; create it with create_lora_training_client first")
        return slot

    def create_sampler(self, session_id: str, seq: int, base_model: str | None, model_path: str | None,
                       tenant: str) -> str:
        """Register a sampling session over the base model or a checkpoint of `tenant`; return its id."""
        sampler_id = f"{session_id}:sample:{seq}"
        if model_path:
            state = self.read_checkpoint(model_path, tenant)
            self.samplers[sampler_id] = SamplerSource(sampler_id, session_id, LoraSpec(**state["lora"]),
                                                      state["adapter"], model_path)
        else:
            self.check_base(base_model)
            self.samplers[sampler_id] = SamplerSource(sampler_id, session_id)
        return sampler_id

    def sampler(self, sampler_id: str) -> SamplerSource:
        src = self.samplers.get(sampler_id)
        if src is None:
            raise RequestError(f"unknown sampling_session_id {show(sampler_id)}")
        return src

    # ---- adapters -----------------------------------------------------------------------------------

    def _lora_config(self, spec: LoraSpec):
        from workbench.errors import require

        peft = require("peft")
        targets = []
        for name in self._linear_names:
            if name.endswith("lm_head"):
                keep = spec.train_unembed and (self.adapt_tied_unembed or not self.tied_unembed)
            elif "attn" in name or "attention" in name:
                keep = spec.train_attn
            else:
                keep = spec.train_mlp
            if keep:
                targets.append(name)
        if not targets:
            raise RequestError("lora_config: this model's lm_head is tied to its embeddings and is not adapted; "
                               "set train_mlp or train_attn")
        return peft.LoraConfig(r=spec.rank, lora_alpha=LORA_ALPHA, lora_dropout=0.0, target_modules=targets,
                               task_type="CAUSAL_LM")

    def _add_adapter(self, name: str, spec: LoraSpec) -> None:
        from peft import get_peft_model

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(spec.seed if spec.seed is not None else 0)
            if self.peft is None:
                self.peft = get_peft_model(self.base, self._lora_config(spec), adapter_name=name)
            else:
                self.peft.add_adapter(name, self._lora_config(spec))
        self.peft.to(self.device)
        self._activate(name)

    def _activate(self, adapter: str) -> None:
        """Make `adapter` the one the model runs and the only one with trainable parameters."""
        self.peft.set_adapter(adapter)
        marker = f".{adapter}."
        for n, p in self.peft.named_parameters():
            p.requires_grad_(marker in n)

    def _new_slot(self, model_id: str, session_id: str, spec: LoraSpec) -> Slot:
        if model_id in self.slots:
            raise RequestError(f"model_id {model_id} already exists in this session")
        self._adapters += 1
        adapter = f"m{self._adapters}"
        self._add_adapter(adapter, spec)
        config = ClientConfig(model=self.base_path, lora_r=spec.rank, schedule="constant", max_grad_norm=0.0,
                              seed=spec.seed or 0)
        slot = Slot(model_id, session_id, adapter, spec, TrainingClient(self.peft, self.tokenizer, config))
        self.slots[model_id] = slot
        return slot

    def _adapter_state(self, slot: Slot) -> dict:
        from peft import get_peft_model_state_dict

        state = get_peft_model_state_dict(self.peft, adapter_name=slot.adapter, save_embedding_layers=False)
        return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}

    def _load_adapter_state(self, adapter: str, weights: dict) -> None:
        from peft import set_peft_model_state_dict

        result = set_peft_model_state_dict(self.peft, weights, adapter_name=adapter)
        missing = [k for k in getattr(result, "unexpected_keys", []) if "lora_" in k]
        if missing:
            raise RequestError(f"checkpoint does not fit the adapter (unexpected {missing[0]})")

    # ---- training -----------------------------------------------------------------------------------

    def create_model(self, session_id: str, model_seq_id: int, base_model: str, lora: dict | None,
                     optimizer: dict | None = None) -> dict:
        self.check_base(base_model)
        check_optimizer(optimizer)
        model_id = f"{session_id}:train:{model_seq_id}"
        self._new_slot(model_id, session_id, LoraSpec.parse(lora))
        self.meter.record(session_id, model_id)
        return {"type": "create_model", "model_id": model_id}

    def _logprobs(self, tokens: list[torch.Tensor], targets: list[torch.Tensor]) -> list[torch.Tensor]:
        """Per sequence, log p(target_t | tokens_<=t) under the active weights, in fp32."""
        model = self.peft if self.peft is not None else self.base
        width = max(t.numel() for t in tokens)
        ids = torch.full((len(tokens), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, t in enumerate(tokens):
            ids[i, :t.numel()] = t
            mask[i, :t.numel()] = 1
        logits = model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device), use_cache=False).logits
        return [_target_logprobs(logits[i, :t.numel()], targets[i].to(self.device)) for i, t in enumerate(tokens)]

    def _micro_batches(self, n_tokens: list[int]) -> list[list[int]]:
        batches: list[list[int]] = [[]]
        width = 0
        for i, n in enumerate(n_tokens):
            width_if = max(width, n)
            if batches[-1] and width_if * (len(batches[-1]) + 1) > self.micro_batch_tokens:
                batches.append([])
                width_if = n
            batches[-1].append(i)
            width = width_if
        return batches

    def _check_length(self, tokens: np.ndarray, what: str) -> None:
        if tokens.size == 0:
            raise RequestError(f"{what} is empty")
        if tokens.size > self.max_context:
            raise RequestError(f"{what} has {tokens.size} tokens; the model takes at most {self.max_context}")

    def _check_ids(self, tokens: np.ndarray, what: str) -> None:
        if tokens.size and (tokens.min() < 0 or tokens.max() >= self.vocab):
            bad = int(tokens.max()) if tokens.max() >= self.vocab else int(tokens.min())
            raise RequestError(f"{what} has token id {bad} outside the vocabulary [0, {self.vocab})")

    def forward_backward(self, req: ForwardBackwardRequest) -> bytes:
        slot = self.slot(req.model_id)
        self.meter.check_budget(slot.session_id)
        if not req.data:
            raise RequestError("forward_backward got no data")
        check_loss(req.loss_fn, req.loss_fn_config, [d.inputs for d in req.data])
        tokens, inputs = [], []
        for i, d in enumerate(req.data):
            self._check_length(d.tokens, f"datum {i}")
            self._check_ids(d.tokens, f"datum {i}")
            named = {}
            for k, v in d.inputs.items():
                two_d_ok = req.loss_fn == "cross_entropy" and k in ("target_tokens", "weights")
                if v.ndim == 0 or v.shape[0] != d.tokens.size or v.ndim > (2 if two_d_ok else 1):
                    want = f"[{d.tokens.size}] or [{d.tokens.size}, K]" if two_d_ok else f"[{d.tokens.size}]"
                    raise RequestError(f"datum {i}: loss_fn_inputs[{show(k, 40)}] has shape {list(v.shape)}; expected {want}")
                named[k] = torch.from_numpy(np.ascontiguousarray(v)).to(self.device)
            if "weights" in named and named["weights"].shape != named["target_tokens"].shape:
                raise RequestError(f"datum {i}: weights has shape {list(named['weights'].shape)}, target_tokens "
                                   f"{list(named['target_tokens'].shape)}")
            if named["target_tokens"].is_floating_point():
                raise RequestError(f"datum {i}: loss_fn_inputs['target_tokens'] must hold integers (int64)")
            self._check_ids(named["target_tokens"].cpu().numpy(), f"datum {i} target_tokens")
            tokens.append(torch.from_numpy(d.tokens))
            inputs.append(named)
        self._activate(slot.adapter)
        outputs: list[dict[str, np.ndarray]] = []
        total = 0.0
        for batch in self._micro_batches([t.numel() for t in tokens]):
            with torch.set_grad_enabled(not req.forward_only):
                logps = self._logprobs([tokens[i] for i in batch], [inputs[i]["target_tokens"].long() for i in batch])
                losses = [per_token_loss(req.loss_fn, lp, inputs[i], req.loss_fn_config) for lp, i in zip(logps, batch, strict=True)]
                loss = torch.stack([x.sum() for x in losses]).sum()
                if not req.forward_only:
                    loss.backward()
            total += float(loss.detach())
            outputs += [{"logprobs": lp.detach().float().cpu().numpy(), "elementwise_loss": x.detach().float().cpu().numpy()}
                        for lp, x in zip(logps, losses, strict=True)]
        n = req.num_tokens
        if req.forward_only:
            self.meter.record(slot.session_id, slot.model_id, prefill=n)
        else:
            self.meter.record(slot.session_id, slot.model_id, trained=n)
        return encode_forward_backward_output(outputs, {"loss:sum": total})

    def optim_step(self, model_id: str, params: dict) -> dict:
        slot = self.slot(model_id)
        self.meter.check_budget(slot.session_id)
        p = {"learning_rate": 1e-4, "beta1": 0.9, "beta2": 0.95, "eps": 1e-12, "weight_decay": 0.0,
             "grad_clip_norm": 0.0}
        params = dict(params or {})
        kind = params.pop("type", "adam")
        unknown = sorted(set(params) - set(p))
        if kind not in ("adam", "adamw") or unknown:
            raise RequestError(f"only AdamParams are supported (got type {show(kind)}{', fields ' + show(', '.join(unknown)) if unknown else ''})")
        p.update(params)
        for k in ("learning_rate", "eps", "weight_decay", "grad_clip_norm"):
            if not isinstance(p[k], int | float) or not 0 <= p[k] < float("inf"):
                raise RequestError(f"adam_params.{k} must be a finite number >= 0, got {show(p[k])}")
        for k in ("beta1", "beta2"):
            if not isinstance(p[k], int | float) or not 0 <= p[k] < 1:
                raise RequestError(f"adam_params.{k} must be in [0, 1), got {show(p[k])}")
        client = slot.client
        for i, group in enumerate(client.optimizer.param_groups):
            group.update(lr=p["learning_rate"], betas=(p["beta1"], p["beta2"]), eps=p["eps"])
            group["weight_decay"] = p["weight_decay"] if i == 0 else 0.0  # group 1: biases and norms
        client.config.max_grad_norm = p["grad_clip_norm"]
        self._activate(slot.adapter)
        metrics = client.optim_step()
        slot.steps += 1
        self.meter.record(slot.session_id, slot.model_id)
        return {"metrics": {"grad_norm:mean": metrics["grad_norm"], "learning_rate:mean": metrics["lr"]}}

    # ---- checkpoints --------------------------------------------------------------------------------

    def _checkpoint_file(self, tenant: str, run: str, kind: str, name: str) -> Path:
        """Checkpoints live under their tenant's directory: a path names a checkpoint of its caller's tenant."""
        return self.checkpoint_dir / safe_dir(tenant) / safe_dir(run) / kind / name / "state.pt"

    def save(self, model_id: str, name: str, kind: str, overwrite: bool = True, tenant: str = "default") -> dict:
        """Write the adapter (and for `weights`, the optimiser) to a `tinker://` path of `tenant`; return it."""
        slot = self.slot(model_id)
        check_name(name, "checkpoint name")
        path = self._checkpoint_file(tenant, model_id, kind, name)
        if path.exists() and not overwrite:
            raise RequestError(f"checkpoint {name!r} exists for {model_id}; pass overwrite=True to replace it")
        state = {"format": CHECKPOINT_FORMAT, "base_model": self.name, "lora": asdict(slot.spec),
                 "adapter": self._adapter_state(slot), "steps": slot.steps,
                 "optimizer": slot.client.optimizer.state_dict() if kind == "weights" else None}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_path(path)
        torch.save(state, tmp)
        os.replace(tmp, path)
        self.meter.record(slot.session_id, slot.model_id)
        return {"path": f"tinker://{model_id}/{kind}/{name}"}

    def snapshot_for_sampler(self, model_id: str, sampler_seq: int) -> dict:
        """An in-memory copy of the adapter as a new sampling session (`save_weights_and_get_sampling_client`)."""
        slot = self.slot(model_id)
        sampler_id = f"{slot.session_id}:sample:{sampler_seq}"
        self.samplers[sampler_id] = SamplerSource(sampler_id, slot.session_id, slot.spec, self._adapter_state(slot))
        self.meter.record(slot.session_id, slot.model_id)
        return {"type": "save_weights_for_sampler", "sampling_session_id": sampler_id}

    def read_checkpoint(self, tinker_path: str, tenant: str) -> dict:
        """The checkpoint `tinker_path` of `tenant`; RequestError (naming only the tinker:// path) if none."""
        run, kind, name = parse_tinker_path(tinker_path)
        path = self._checkpoint_file(tenant, run, kind, name)
        if not path.is_file():
            raise RequestError(f"no checkpoint at {tinker_path} on this server")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - a damaged file: say which checkpoint, not where it lives
            raise RequestError(f"{tinker_path}: the checkpoint cannot be read") from None
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise RequestError(f"{tinker_path}: not a checkpoint written by this server")
        if state["base_model"] != self.name:
            raise RequestError(f"{tinker_path} was trained on {state['base_model']!r}; this server serves {self.name!r}")
        return state

    def load(self, path: str, optimizer: bool, model_id: str | None = None, session_id: str | None = None,
             model_seq_id: int | None = None, base_model: str | None = None, optimizer_config: dict | None = None,
             tenant: str = "default") -> dict:
        """Load a checkpoint of `tenant` into an existing client (`model_id`) or a new one (`session_id`,
        `model_seq_id`)."""
        state = self.read_checkpoint(path, tenant)
        if optimizer and state["optimizer"] is None:
            raise RequestError(f"{path} holds sampler weights without optimizer state; save it with save_state")
        spec = LoraSpec(**state["lora"])
        if model_id is None:
            check_optimizer(optimizer_config)
            if session_id is None or model_seq_id is None:
                raise RequestError("load_weights needs model_id, or session_id and model_seq_id for a new model")
            self.check_base(base_model)
            model_id = f"{session_id}:train:{model_seq_id}"
            slot = self._new_slot(model_id, session_id, spec)
        else:
            slot = self.slot(model_id)
            if slot.spec.shape() != spec.shape():
                raise RequestError(f"{path} has LoRA {spec.shape()} (rank, mlp, attn, unembed); {model_id} has {slot.spec.shape()}")
        self._activate(slot.adapter)
        self._load_adapter_state(slot.adapter, state["adapter"])
        if optimizer:
            slot.client.optimizer.load_state_dict(state["optimizer"])
            slot.steps = int(state.get("steps", 0))
        self.meter.record(slot.session_id, slot.model_id)
        return {"type": "load_weights", "path": path, "model_id": model_id}

    def release_session(self, session_id: str) -> dict:
        """Drop a finished session's adapters, optimisers and sampler snapshots (its checkpoints stay)."""
        models = [m for m, slot in self.slots.items() if slot.session_id == session_id]
        for model_id in models:
            self._drop_adapter(self.slots.pop(model_id).adapter)
        samplers = [k for k, src in self.samplers.items() if src.session_id == session_id]
        for sampler_id in samplers:
            del self.samplers[sampler_id]
            if self._sampler_loaded and self._sampler_loaded[0] == sampler_id:
                self._drop_adapter(SAMPLER_ADAPTER)
        return {"models": len(models), "samplers": len(samplers)}

    def _drop_adapter(self, name: str) -> None:
        self.peft.delete_adapter(name)
        if name == SAMPLER_ADAPTER:
            self._sampler_loaded = None
        if not self.peft.peft_config:  # no adapter left: take the LoRA layers out, back to the plain model
            self.base = self.peft.unload()
            self.peft = None

    # ---- sampling -----------------------------------------------------------------------------------

    def _use_sampler(self, src: SamplerSource):
        """A context in which the model runs with the sampler's weights."""
        if src.weights is None:  # the base model (no adapter left behaves as the base model too)
            return self.peft.disable_adapter() if self.peft is not None and self.peft.peft_config else contextlib.nullcontext()
        key = (src.sampler_id, src.spec.shape())
        if self._sampler_loaded != key:
            loaded_shape = self._sampler_loaded[1] if self._sampler_loaded else None
            if self.peft is not None and SAMPLER_ADAPTER in self.peft.peft_config and loaded_shape != src.spec.shape():
                self.peft.delete_adapter(SAMPLER_ADAPTER)
            if self.peft is None or SAMPLER_ADAPTER not in self.peft.peft_config:
                self._add_adapter(SAMPLER_ADAPTER, src.spec)
            self._activate(SAMPLER_ADAPTER)
            self._load_adapter_state(SAMPLER_ADAPTER, src.weights)
            self._sampler_loaded = key
        self._activate(SAMPLER_ADAPTER)
        return contextlib.nullcontext()

    def sample(self, sampler_id: str, prompt: list[int], num_samples: int, params: dict,
               prompt_logprobs: bool, last_n: int | None = None) -> bytes:
        """Sample; with `prompt_logprobs`, the prompt's log-probs too (NaN at position 0, and before the
        last `last_n` positions when given)."""
        src = self.sampler(sampler_id)
        self.meter.check_budget(src.session_id)
        ids = np.asarray(prompt, dtype=np.int64)
        self._check_length(ids, "prompt")
        self._check_ids(ids, "prompt")
        if not isinstance(num_samples, int) or not 1 <= num_samples <= 1024:
            raise RequestError(f"num_samples must be an integer in [1, 1024], got {show(num_samples)}")
        with torch.no_grad(), self._use_sampler(src):
            model = self.peft if self.peft is not None else self.base
            sequences = generate(model, self.tokenizer, prompt, num_samples, params or {}, self.max_context, self.device)
            plp = None
            if prompt_logprobs:
                scored = []
                if len(prompt) > 1:
                    scored = self._logprobs([torch.tensor(prompt[:-1])], [torch.tensor(prompt[1:])])[0].cpu().tolist()
                plp = np.array([np.nan, *scored], dtype=np.float32)
                if last_n is not None:
                    if not isinstance(last_n, int) or not 1 <= last_n <= len(prompt) - 1:
                        raise RequestError(f"prompt_logprobs_last_n must be in [1, {len(prompt) - 1}], got {show(last_n)}")
                    plp[:len(prompt) - last_n] = np.nan
        self.meter.record(src.session_id, sampler_id, prefill=len(prompt), sampled=sum(len(s.tokens) for s in sequences))
        return encode_sample_response(sequences, plp)
