"""RegMix-style mixture search: plan mixtures, train proxies, fit a regressor, search, build the corpus.

Python API: `from mixopt import plan_mixtures, train_proxies, fit_regressor, search_mixture,
predict_mixtures, build_corpus, confirm_mixture` (see `mixopt.api`; the names differ from the submodules
`plan`, `fit`, ... on purpose); the CLI is `wb mix plan|run|merge|fit|search|predict|build|confirm`. Loaded on
first use, so `import mixopt` stays light.
"""

from workbench.lazy import lazy_exports  # noqa: E402

_API = {**dict.fromkeys(("plan_mixtures", "train_proxies", "merge_shards", "fit_regressor", "search_mixture", "predict_mixtures",
                         "build_corpus", "confirm_mixture", "sweep_config"), "mixopt.api"),
        "PlanConfig": "mixopt.plan", "FitConfig": "mixopt.fit", "SearchConfig": "mixopt.search",
        "PredictConfig": "mixopt.predict",
        "BuildConfig": "mixopt.build", "ProxyConfig": "mixopt.proxy"}
__all__ = sorted(_API)

__getattr__ = lazy_exports(__name__, _API)
