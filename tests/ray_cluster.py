"""A two-node Ray cluster on loopback for the tests of the Ray engines (curate's, mixopt's): a head and a
worker node, one CPU and a bounded object store each, usage stats and auth off; Ray shut down and the
environment put back afterwards. The worker node is `cluster.worker`, so a test can lose it midway."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled"}


@contextlib.contextmanager
def two_node_cluster(store_mb: int) -> Iterator:
    import ray
    from ray.cluster_utils import Cluster

    saved = {k: os.environ.get(k) for k in RAY_ENV}
    os.environ.update(RAY_ENV)
    store = store_mb * 1024**2
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": store,
                                                      "include_dashboard": False})
    c.worker = c.add_node(num_cpus=1, object_store_memory=store)
    c.wait_for_nodes()
    try:
        yield c
    finally:
        ray.shutdown()
        c.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
