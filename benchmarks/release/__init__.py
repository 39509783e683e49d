"""What ships from the benchmark: the pretrained release in the wheel (`build`:
`python -m benchmarks.release build|render`), uploading a run's SAEs in SAELens'
release layout (`upload_saes`) and the demo's findings sentence
(`demo_findings`)."""
