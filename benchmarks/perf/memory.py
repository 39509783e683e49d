"""Peak memory of one training step, from torch's own allocator accounting
(never process RSS): `torch.cuda`'s peak counters on CUDA; on CPU, which keeps no
counters, the allocation and free events the profiler records
(`profile_memory=True`) added to the bytes already allocated when the step starts
(weights, optimizer state, batch), so both devices report the same quantity."""

import gc
from collections.abc import Iterator
from typing import Any

import torch
from sae_lens.training.sae_trainer import SAETrainer


def free_memory(device: str) -> None:
    """Drop what the last measurement left allocated."""
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def memory_accounting(device: str) -> str:
    if device.startswith("cuda"):
        return "torch.cuda.max_memory_allocated (caching allocator)"
    return (
        "torch CPU allocator: profiler allocation/free events over the step "
        "(profile_memory=True) + bytes of the tensors alive at its start"
    )


def _tensor_bytes(tensors: Iterator[Any]) -> int:
    """Bytes of the distinct storages behind `tensors` (views counted once)."""
    storages: dict[int, int] = {}
    for t in tensors:
        if isinstance(t, torch.Tensor) and t.device.type != "meta":
            storage = t.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


def _resident_tensors(trainer: SAETrainer[Any, Any]) -> Iterator[Any]:
    sae = trainer.sae
    yield from sae.parameters()
    yield from (p.grad for p in sae.parameters())
    yield from sae.buffers()
    yield from vars(sae).values()  # scratch the SAE keeps between steps
    for state in trainer.optimizer.state.values():
        yield from state.values()
    yield from vars(trainer).values()  # the trainer's own tensors (firing counts)


def step_peak_memory(
    trainer: SAETrainer[Any, Any], batch: torch.Tensor
) -> dict[str, int]:
    """Peak bytes allocated during one training step, from torch's allocator
    accounting, counting what was allocated when it started (the weights, their
    optimizer state, the batch) as CUDA's `max_memory_allocated` does:
    {"resident": bytes at the start, "peak": bytes at the peak}."""
    return loop_peak_memory(trainer, batch, 1)


def loop_peak_memory(
    trainer: SAETrainer[Any, Any], batch: torch.Tensor, steps: int
) -> dict[str, int]:
    """`step_peak_memory` over `steps` steps of SAELens' training loop: as in
    `SAETrainer.fit` (`step_output = self.step(...)`), each step's output stays
    alive until the next step has returned, so whatever it holds adds to the
    next step's peak."""
    if batch.device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        resident = torch.cuda.memory_allocated()
        _loop(trainer, batch, steps)
        torch.cuda.synchronize()
        return {"resident": resident, "peak": torch.cuda.max_memory_allocated()}
    return _profiled_peak(trainer, batch, steps)


def _loop(trainer: SAETrainer[Any, Any], batch: torch.Tensor, steps: int) -> None:
    step_output = None
    for _ in range(steps):
        step_output = trainer.step(batch)
    del step_output


def _profiled_peak(
    trainer: SAETrainer[Any, Any], batch: torch.Tensor, steps: int
) -> dict[str, int]:
    from torch.profiler import ProfilerActivity, profile

    gc.collect()
    resident = _tensor_bytes(_resident_tensors(trainer)) + _tensor_bytes(iter([batch]))
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        _loop(trainer, batch, steps)
    # Only blocks allocated under the profiler report their frees, so the running
    # sum is exactly the step's own allocations still alive at each event.
    events = [
        e
        for e in prof.profiler.kineto_results.events()
        if e.name() == "[memory]"  # type: ignore[union-attr]
    ]
    running = transient = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        running += event.nbytes()
        transient = max(transient, running)
    return {"resident": resident, "peak": resident + transient}
