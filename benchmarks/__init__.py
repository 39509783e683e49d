"""Benchmarks for saelens-aligned: synthetic comparisons, sweeps, perf."""
