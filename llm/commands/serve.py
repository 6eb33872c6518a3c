"""`wb serve MODEL_PATH [--port 8000]`: an OpenAI-compatible server over a local transformers model.

SIGTERM or Ctrl-C stops every queued and running generation first, so the server exits within seconds.
"""

from __future__ import annotations

import argparse

from llm.runtime import DTYPES


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
                             "(the generator of `wb train grpo --generator`)")


def run(args: argparse.Namespace) -> int:
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

        engine = VersionedEngine(engine)
        routes = weight_routes(engine)
    app = build_app(engine, name, args.max_batch, routes, max_pending=args.max_queue)

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            close_app(app)  # stop generating now; uvicorn alone would wait for every running request
            super().handle_exit(sig, frame)

    print(f"serving {name} on http://{args.host}:{args.port}/v1 ({engine.dtype}, {engine.threads} threads on "
          f"{engine.device})", flush=True)
    Server(uvicorn.Config(app, host=args.host, port=args.port, log_level="warning",
                          timeout_graceful_shutdown=GRACE_SECONDS)).run()
    return 0
