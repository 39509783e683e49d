"""The benchmark of saelens-aligned: does aligned training do what the paper
claims, against fair controls, at matched L0? One folder per concept:

- `sweeps/`: config, run plan, learning-rate rule and grid, executors, backends;
- `records/`: the records a sweep writes and their typed views;
- `analysis/`: verdicts, Pareto, stability and curves (pure, over records);
- `reports/`: tables, figures and the generated documents;
- `perf/`: what aligned training costs; `release/`: what ships;
- `experiments/`: one-off measurements quoted in the docs;
- `configs/` (presets) and `results/` (committed records).

`python -m benchmarks COMMAND` runs any of it.
"""
