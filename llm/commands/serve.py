"""`wb serve MODEL_PATH [--port 8000]`: an OpenAI-compatible server over a local transformers model.

SIGTERM or Ctrl-C stops every queued and running generation first, so the server exits within seconds.
Every route takes JSON only and refuses browser cross-origin requests; bodies and prompts are capped
(`--max-body-mb`, `--max-prompt-tokens`). `--allow-weight-updates` needs `--weights-dir` and a token
(`--weights-token`, else $WB_WEIGHTS_TOKEN, else one is generated and printed once).
"""

from __future__ import annotations

import argparse

from llm.http_guard import LOOPBACK_HOSTS, is_loopback
from llm.runtime import DTYPES
from llm.serve import CHARS_PER_TOKEN, MAX_BODY_BYTES
from llm.weight_updates import TOKEN_ENV


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_path", help="a local transformers checkpoint directory with a chat template")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on, 1-65535 (default: 8000)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--max-batch", type=int, default=16, help="samples decoded together; a larger n is split (default: 16)")
    parser.add_argument("--max-queue", type=int, default=256,
                        help="samples (sum of n) queued or running before new requests get 429 (default: 256)")
    parser.add_argument("--served-model-name", help="model id clients send (default: the directory name)")
    parser.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--dtype", default="auto", choices=DTYPES,
                        help="weights dtype: auto = bfloat16 on a CUDA GPU that supports it, else float32 (the "
                             "trainers and `wb eval --backend hf` resolve it the same way)")
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads torch uses; 0 = one fewer than the usable CPUs (at least 1), or "
                             "OMP_NUM_THREADS when set (default: 0)")
    parser.add_argument("--allow-weight-updates", action="store_true",
                        help="accept new weights on POST /v1/weights and report each completion's weight_version "
                             "(the generator of `wb train grpo --generator`); needs --weights-dir")
    parser.add_argument("--weights-dir", help="the only directory weight updates may load from (with "
                                              "--allow-weight-updates; the trainer writes RUN/generator-weights)")
    parser.add_argument("--weights-token", help="the bearer token POST /v1/weights requires (default: "
                                                f"${TOKEN_ENV}, else a new one printed at start)")
    parser.add_argument("--max-body-mb", type=float, default=MAX_BODY_BYTES / 2**20,
                        help=f"largest request body in MiB; larger ones get 413 (default: {MAX_BODY_BYTES / 2**20:g})")
    parser.add_argument("--max-prompt-tokens", type=int,
                        help=f"longest prompt in tokens; longer ones get 400, and a text over {CHARS_PER_TOKEN} characters per "
                             "token is refused before tokenizing (default: the model's context)")


def run(args: argparse.Namespace) -> int:
    import os
    import secrets
    import socket
    from pathlib import Path

    import uvicorn

    from llm.local_engine import LocalEngine
    from llm.serve import GRACE_SECONDS, build_app, close_app
    from workbench.errors import InputError

    if not 1 <= args.port <= 65535:
        raise InputError(f"--port {args.port}: must be from 1 to 65535")
    if args.max_batch < 1:
        raise InputError(f"--max-batch {args.max_batch}: must be at least 1")
    if args.max_queue < 1:
        raise InputError(f"--max-queue {args.max_queue}: must be at least 1")
    if not 0 < args.max_body_mb <= 1024:
        raise InputError(f"--max-body-mb {args.max_body_mb:g}: must be more than 0 and at most 1024")
    if args.max_prompt_tokens is not None and args.max_prompt_tokens < 1:
        raise InputError(f"--max-prompt-tokens {args.max_prompt_tokens}: must be at least 1")
    token = args.weights_token or os.environ.get(TOKEN_ENV)
    if args.allow_weight_updates:
        if not args.weights_dir:
            raise InputError("--allow-weight-updates needs --weights-dir DIR: the only directory weights load from")
        if not Path(args.weights_dir).is_dir():
            raise InputError(f"--weights-dir {args.weights_dir}: no such directory")
    elif args.weights_dir or args.weights_token:
        raise InputError("--weights-dir and --weights-token go with --allow-weight-updates")
    if not (Path(args.model_path) / "config.json").is_file():
        raise InputError(f"{args.model_path}: not a model directory (no config.json); for a training run, "
                         "serve its model/ folder")
    with socket.socket() as probe:  # fail before loading the model, not after printing the address
        if probe.connect_ex((args.host, args.port)) == 0:
            raise InputError(f"{args.host}:{args.port} is already in use; pick another --port")
    if args.threads < 0:
        raise InputError(f"--threads {args.threads}: must be 0 (automatic) or more")
    engine = LocalEngine(args.model_path, args.device, args.dtype, args.threads)
    name = args.served_model_name or engine.name
    routes = None
    if args.allow_weight_updates:
        from llm.weight_updates import VersionedEngine, weight_routes

        engine = VersionedEngine(engine, args.weights_dir)
        if not token:
            token = secrets.token_urlsafe(32)
            print(f"weight updates need this token (Authorization: Bearer): {token}", flush=True)
        routes = weight_routes(engine, token)
    app = build_app(engine, name, args.max_batch, routes, max_pending=args.max_queue,
                    max_body_bytes=int(args.max_body_mb * 2**20), max_prompt_tokens=args.max_prompt_tokens,
                    allowed_hosts=LOOPBACK_HOSTS if is_loopback(args.host) else None)

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            close_app(app)  # stop generating now; uvicorn alone would wait for every running request
            super().handle_exit(sig, frame)

    print(f"serving {name} on http://{args.host}:{args.port}/v1 ({engine.dtype}, {engine.threads} threads on "
          f"{engine.device})", flush=True)
    Server(uvicorn.Config(app, host=args.host, port=args.port, log_level="warning",
                          timeout_graceful_shutdown=GRACE_SECONDS)).run()
    return 0
