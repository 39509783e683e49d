"""One-off experiments and calibration scripts, each runnable as
`python -m benchmarks.experiments.<name>`; their results are quoted in the docs."""
