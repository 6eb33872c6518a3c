"""The `wb mix plan|run|merge|fit|search|predict|build|confirm` command modules: the RegMix chain, one step each.

    wb mix plan examples/mixopt/domains.yaml --output runs/mix --runs 48
    wb mix run runs/mix --workers 2      # or --engine ray [--ray-address ADDR], or --shard i/n + wb mix merge runs/mix
    wb mix fit runs/mix/results.parquet --output runs/mix-fit
    wb mix search runs/mix-fit --output runs/mix-search
    wb mix predict runs/mix-fit new-mixtures.parquet [--output runs/mix-predict]
    wb mix build runs/mix-search/mixture.json --output runs/mix-corpus --tokens 2000000   # or --rows 3000
    wb mix confirm runs/mix-search/mixture.json --output runs/mix-confirm
"""
