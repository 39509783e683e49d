"""What the named text corpora hold, measured: tokens per source and split, each
source's licence, and the n-gram overlap with every text an evaluation reads
(`python -m benchmarks corpus`, writing docs/corpora.md and its JSON record)."""
