"""Verdicts on the paper's claims, from a sweep's typed records.

- `rules`: the claims, their metrics, the references and every rule, stated once.
- `statistics`: paired differences by seed, intervals, Benjamini-Hochberg.
- `matching`: an aligned seed against the reference's same seed at matched L0.
- `degenerate`: collapsed points, left out of every verdict.
- `judge`: one row per claim metric, form, reference and base, plus pooled rows.
- `summary`: the rows a reader needs first (Pareto, compositions) and the tables.
"""
