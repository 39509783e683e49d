"""A sweep folder's records: their on-disk layout, SAEBench's result format
(`layout`: paths, reading, writing, the run log) and the typed views and one
per-run table every analysis and report reads (`run_table`), and the
calibration phase's record (`calibration`: `calibration.json`)."""
