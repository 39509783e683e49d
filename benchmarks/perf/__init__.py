"""What aligned training costs: step time, memory and roofline of aligned
against its base (`aligned_cost`: `python -m benchmarks perf`, with `settings`,
`timing`, `memory`), the sparse TopK step against SAELens' own steps
(`sparse_step`: `python -m benchmarks sparse-perf`) and a sweep's LM-forward time
(`sweep_lm_time`)."""
