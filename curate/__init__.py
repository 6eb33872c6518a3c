"""Curation steps: filters, exact and MinHash near dedup, benchmark decontamination.

Run from the CLI as `wb curate`, `wb dedup` and `wb decontam`. Every step works on Arrow batches and
every removed row lands in `removed.parquet` with a reason. Importing this package imports no torch.
"""
