"""RegMix-style mixture search: plan mixtures, train proxies, fit a regressor, search, build the corpus."""
