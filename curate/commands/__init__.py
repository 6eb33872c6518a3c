"""The curation command modules (`wb curate`, `dedup`, `decontam`, `semdedup`, `select`, `select train-classifier`)
and the arguments they share, and `light_start`, which trims their process's fixed start-up."""

from __future__ import annotations

import argparse
import importlib.abc
import sys


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """SOURCE..., --output, --config, --engine and --ray-address, common to every curation command."""
    parser.add_argument("sources", nargs="+", metavar="SOURCE", help="files, directories or run directories")
    parser.add_argument("--output", required=True, help="the run directory to write")
    parser.add_argument("--config", help="a YAML file of options (flags override it)")
    parser.add_argument("--engine", default="local", choices=["local", "ray"],
                        help="where the steps and dedup run: this process (default) or Ray (needs the ray extra)")
    parser.add_argument("--ray-address", default=None,
                        help="a Ray cluster to join (host:port, ray://host:10001 or auto; default with --engine "
                             "ray: start a local Ray on this machine)")


class _Absent(importlib.abc.MetaPathFinder):
    """While installed, importing one of `names` raises ImportError as if it were not installed."""

    def __init__(self, names: set[str]):
        self.names = names

    def find_spec(self, name, path=None, target=None):  # noqa: ANN001 (the finder protocol)
        if name in self.names:
            raise ImportError(f"{name} is skipped while a library probes for it")


def _probe_without(names: set[str], probe) -> None:  # noqa: ANN001
    finder = _Absent(names - set(sys.modules))
    sys.meta_path.insert(0, finder)
    try:
        probe()
    finally:
        sys.meta_path.remove(finder)


def light_start(args: argparse.Namespace, numba: bool) -> None:
    """Spare a `wb dedup`/`curate`/`decontam` process two imports that libraries make only to probe (about
    0.35 s of CPU at every start, a third of a small run; issue 29): pyarrow imports pandas on its first
    conversion to ask whether objects are pandas ones (0.2 s), and numba's array maths imports scipy.linalg
    to look for BLAS (0.15 s), which no kernel here uses (`curate.kernels` has no np.dot or linalg).

    Each probe runs once with the module hidden, so it answers "absent". Only in a process that is this
    command alone (the `wb` script, `python -m workbench.cli`): pyarrow then stays without its pandas
    integration until something calls `to_pandas`/`from_pandas` (which imports pandas then), and numba
    without BLAS, which a caller importing `main` into a bigger program (tests, the app) may need.
    """
    if args.argv is None or list(args.argv[1:]) != sys.argv[1:]:
        return
    import numpy as np
    import pyarrow as pa

    # the first Python-to-Arrow and Arrow-to-numpy conversions are where pyarrow (and its C++ side) probe
    _probe_without({"pandas"}, lambda: pa.array(np.zeros(1)).to_numpy(zero_copy_only=False))
    if numba:
        _probe_without({"scipy.linalg"}, lambda: importlib.import_module("numba.np.arraymath"))
