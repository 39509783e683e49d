"""Running a sweep: what it trains and evaluates and how.

- `config`, `config_checks`, `presets`: the sweep config, its checks, and the
  YAML presets of `benchmarks/configs/` read into it;
- `runs`: one `RunSpec` per SAE, their ids, and the main runs at chosen rates;
- `plan`: the phases of a sweep (learning-rate grid, main runs, stability,
  report) and `run_plan`; `sweep`: `python -m benchmarks sweep`;
- `lr_rule` (how a rate is chosen, pure) and `lr_grid` (the grid phase);
- `executor`: where runs execute (this process, workers, Ray);
- `run_records`, `folder`: a run's record as written, the output folder's checks;
- `stability_phase`, `stability_record`: seed-to-seed stability records;
- `backends/`: LM and synthetic data, training and evaluation of one run;
- `eval_saes`: `python -m benchmarks eval` on SAEs that already exist;
- `rerun_arms`: rerun named arms of a sweep folder.
"""
