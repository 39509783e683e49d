"""What ships from the benchmark: the pretrained release in the wheel (`build`:
`python -m benchmarks.release build|evaluate|restamp|render`, its settings and
paths in `spec`, the stored precision's effect in `precision`), uploading a
run's SAEs in SAELens' release layout (`upload_saes`) and the demo's findings
sentence (`demo_findings`)."""
