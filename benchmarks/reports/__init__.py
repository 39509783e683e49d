"""What a reader sees: a sweep's report (`report`, `tables`), its learning
curves (`curves`), the figures (`figures`), display names (`display`), the
feature-quality table (`feature_quality`) and the generated blocks of README.md
and docs/results.md (`published`: `python -m benchmarks results`)."""
