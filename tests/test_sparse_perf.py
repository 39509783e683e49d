"""The sparse-step benchmark runs, and the docs hold its committed tables."""

import json
import math
from pathlib import Path

from benchmarks.perf.sparse_step import TINY_PLAN, run
from benchmarks.perf.sparse_tables import read_records, render
from benchmarks.perf.sparse_targets import targets_table

ROOT = Path(__file__).resolve().parents[1]
# The records of the sparse step as it is, and of its first version (before
# issue 32's changes), whose figures the targets table compares.
RECORDS = ROOT / "benchmarks" / "results" / "perf" / "sparse_cpu_v2.jsonl"
BEFORE = ROOT / "benchmarks" / "results" / "perf" / "sparse_cpu.jsonl"
DOC = ROOT / "docs" / "performance.md"
BEGIN, END = "<!-- sparse-perf tables: begin -->", "<!-- sparse-perf tables: end -->"
TRAIN_TIME = ROOT / "benchmarks" / "results" / "experiments" / "train_time.jsonl"


def test_sparse_perf_measures_every_family_and_renders_at_tiny_shapes():
    records = list(run(TINY_PLAN))
    families = {(r["family"], r["d_sae"]) for r in records if "family" in r}
    assert ("topk", 128) in families and ("matryoshka_batchtopk", 128) in families
    assert ("matryoshka_batchtopk", 256) not in families
    for r in records:
        if r["measurement"] == "sparse_step":
            assert all(math.isfinite(v) and v > 0 for v in r["median_step_s"].values())
            assert r["ratio_to_saelens_dense"]["saelens_dense"] == 1.0
    scaling = [r for r in records if r["measurement"] == "sparse_scaling"]
    assert [r["d_sae"] for r in scaling] == list(TINY_PLAN.scaling_d_saes)
    assert all(s > 0 for r in scaling for s in r["encoder_gemm_share"].values())
    loop = [r for r in records if r["measurement"] == "sparse_loop_memory"]
    assert [r["d_sae"] for r in loop] == list(TINY_PLAN.memory_d_saes)
    (auxk,) = [r for r in records if r["measurement"] == "auxk_crossover"]
    assert set(auxk["median_s"]) == {str(n) for n in TINY_PLAN.auxk_dead}
    tables = render(records)
    # Six tables: step times, memory, autocast, loop memory, scaling, AuxK.
    assert tables.count("\n\n") == 5


def test_the_performance_doc_holds_the_tables_of_the_committed_records():
    text = DOC.read_text()
    generated = text.split(BEGIN, 1)[1].split(END, 1)[0]
    assert generated.strip() == render(read_records(RECORDS)).strip(), (
        "docs/performance.md is stale: paste the output of "
        f"`python -m benchmarks sparse-perf --render {RECORDS.relative_to(ROOT)}` "
        "between its sparse-perf markers."
    )


def test_the_performance_doc_holds_the_targets_of_the_committed_records():
    text = DOC.read_text()
    begin, end = (
        "<!-- sparse-perf targets: begin -->",
        "<!-- sparse-perf targets: end -->",
    )
    generated = text.split(begin, 1)[1].split(end, 1)[0]
    expected = targets_table(read_records(BEFORE), read_records(RECORDS))
    assert generated.strip() == expected.strip(), (
        "docs/performance.md is stale: paste the output of `python -m benchmarks "
        f"sparse-perf --render-targets {BEFORE.relative_to(ROOT)} "
        f"{RECORDS.relative_to(ROOT)}` between its sparse-perf targets markers."
    )


def test_the_performance_doc_holds_the_end_to_end_table_of_the_committed_records():
    from benchmarks.experiments.train_time import render as render_train_time

    text = DOC.read_text()
    begin, end = "<!-- train-time table: begin -->", "<!-- train-time table: end -->"
    generated = text.split(begin, 1)[1].split(end, 1)[0]
    records = [json.loads(line) for line in TRAIN_TIME.read_text().splitlines() if line]
    assert generated.strip() == render_train_time(records).strip(), (
        "docs/performance.md is stale: paste the output of `python -m "
        "benchmarks.experiments.train_time --render "
        f"{TRAIN_TIME.relative_to(ROOT)}` between its train-time markers."
    )
