"""Connecting to Ray for `--engine ray` (curation, proxy sweeps): one place that knows Ray's start-up pitfalls.

    with ray_session(address) as ray: ...   # a cluster's address, or None for a local Ray on loopback

A local Ray is started on 127.0.0.1 (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, else it picks the machine's
routable address), with usage stats off, and with `address="local"` so a stale session file in the temp
directory cannot make it attach to a dead cluster. A missing Ray raises an error naming the install command.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

INSTALL = "pip install 'post-training-workbench[ray]' (or pip install 'ray[data]')"


def import_ray():
    """The `ray` module; raises `InputError` naming the install command when Ray is not installed."""
    from workbench.errors import InputError

    try:
        import ray
    except ImportError:
        raise InputError(f"--engine ray needs Ray: {INSTALL}") from None
    return ray


@contextmanager
def ray_session(address: str | None = None, object_store_bytes: int | None = None) -> Iterator[object]:
    """Ray connected to `address` (a cluster's `host:port`, `ray://...` or `auto`), or a local Ray started
    here on loopback (and stopped at the end) when None; an already initialised Ray is used as it is."""
    ray = import_ray()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    started = False
    if not ray.is_initialized():
        kwargs: dict = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        if address:
            ray.init(address=address, **kwargs)
        else:
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
            ray.init(address="local", object_store_memory=object_store_bytes, **kwargs)
        started = True
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()
