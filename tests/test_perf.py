"""Structural cost of aligned training, and the perf command at tiny shapes."""

import math
from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from benchmarks.perf.aligned_cost import gpu_check, run
from benchmarks.perf.settings import SPARSE_TOPK_CASE, TINY_SETTINGS
from saelens_aligned.alignment import ALIGNMENT_FORMS
from saelens_aligned.diagnostics import sae_alignment_scores
from tests.conftest import (
    ALIGNED_ARCHITECTURES,
    ALIGNED_CASES,
    make_base_twin,
    make_sae,
    step_input,
)

BATCH = (
    37  # distinct from d_in (16) and d_sae (48), so batch-sized matmuls are unambiguous
)
MATMULS = {
    torch.ops.aten.mm.default,
    torch.ops.aten.addmm.default,
    torch.ops.aten.bmm.default,
    torch.ops.aten.baddbmm.default,
}


class BatchMatmulCounter(TorchDispatchMode):
    """Counts matmul kernels that touch a batch-sized operand."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        if func in MATMULS and any(
            isinstance(a, torch.Tensor) and BATCH in a.shape for a in args
        ):
            self.count += 1
        return func(*args, **(kwargs or {}))


def count_batch_matmuls(sae: Any, x: torch.Tensor) -> int:
    with BatchMatmulCounter() as counter:
        out = sae.training_forward_pass(step_input(sae, x))
        out.loss.backward()
    return counter.count


@pytest.mark.parametrize("architecture,alignment", ALIGNED_CASES)
def test_aligned_step_launches_no_more_batch_sized_matmuls_than_its_base(
    architecture, alignment
):
    aligned = make_sae(architecture, alignment)
    base = make_base_twin(aligned)
    x = torch.randn(BATCH, aligned.cfg.d_in)
    base_count = count_batch_matmuls(base, x)
    assert base_count > 0
    assert count_batch_matmuls(aligned, x) <= base_count


def test_perf_command_runs_at_tiny_shapes():
    results = list(
        run(
            TINY_SETTINGS,
            ["aligned_topk", "aligned"],
            ["tied", "projected"],
            memory=False,
        )
    )
    kinds = {r["measurement"] for r in results}
    assert kinds == {"step_overhead", "roofline"}
    for r in results:
        assert "machine" in r and "settings" in r
        if r["measurement"] == "step_overhead":
            assert math.isfinite(r["ratio"]) and r["ratio"] > 0
            assert "peak_memory_ratio" not in r  # memory=False
    # The sparse-decode TopK pair is measured too, in both forms.
    assert {
        r["alignment"]
        for r in results
        if r.get("architecture") == SPARSE_TOPK_CASE.name
    } == {"tied", "projected"}


def test_gpu_check_runs_on_cpu_at_tiny_shapes():
    # The GPU check's code path (bf16 autocast, every variant and form, memory,
    # the sweep's LM time) at tiny shapes on CPU; on a GPU machine it runs as
    # `python -m benchmarks perf --device cuda --gpu-setting`.
    results = list(gpu_check("cpu", tiny=True, sweep_k=2))
    steps = [r for r in results if r["measurement"] == "step_overhead"]
    expected = {
        (name, form)
        for name in [*ALIGNED_ARCHITECTURES, SPARSE_TOPK_CASE.name]
        for form in ALIGNMENT_FORMS
    }
    assert {(r["architecture"], r["alignment"]) for r in steps} == expected
    for r in steps:
        assert r["settings"]["autocast"] and r["settings"]["device"] == "cpu"
        assert math.isfinite(r["ratio"]) and r["ratio"] > 0
        assert math.isfinite(r["peak_memory_ratio"]) and r["peak_memory_ratio"] > 0
        assert "allocator" in r["memory_accounting"]
        assert len(r["load_average"]["before"]) == 3
    sparse = [r for r in results if r["measurement"] == "sparse_step"]
    assert {r["family"] for r in sparse} == {"topk", "batchtopk"}
    assert all(r["settings"]["autocast"] for r in sparse)
    assert any(r["measurement"] == "sparse_memory" for r in results)
    (sweep,) = [r for r in results if r["measurement"] == "sweep_lm_time"]
    assert sweep["device"] == "cpu" and sweep["sweep"]["lm_activations_s"] > 0
    assert any(r["measurement"] == "roofline" for r in results)


@pytest.mark.parametrize("alignment", ["tied", "projected"])
def test_compiled_training_forward_pass_works_for_aligned_topk(alignment):
    sae = make_sae("aligned_topk", alignment)
    compiled = torch.compile(sae.training_forward_pass, backend="inductor")
    optimizer = torch.optim.Adam(sae.parameters(), lr=1e-3)
    x = torch.randn(BATCH, sae.cfg.d_in)
    expected = sae.training_forward_pass(step_input(sae, x)).loss.detach()
    for step in range(2):
        out = compiled(step_input(sae, x, step))
        if step == 0:
            torch.testing.assert_close(
                out.loss.detach(), expected, atol=1e-5, rtol=1e-5
            )
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert float((sae_alignment_scores(sae) - 1).abs().max()) <= 1e-5


def test_sweep_lm_time_measures_the_shared_cache_against_a_single_run():
    from benchmarks.perf.sweep_lm_time import sweep_lm_time

    result = sweep_lm_time(k=4, tiny=True)
    assert result["k"] == 4 and result["single"]["runs"] == 1
    for side in ("single", "sweep"):
        # Both made their own activation cache and evaluated through the LM.
        assert result[side]["lm_activations_s"] > 0
        assert result[side]["lm_eval_s"] > 0
    assert math.isfinite(result["activation_lm_time_ratio"])
