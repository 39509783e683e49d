"""benchmarks.perf.memory's peak-memory accounting: the aligned step allocates no more
than its base's."""

import pytest

from benchmarks.perf.memory import step_peak_memory
from benchmarks.perf.settings import TINY_SETTINGS, build_sae, build_trainer
from saelens_aligned.architectures import same_step_base
from tests.conftest import ALIGNED_CASES, random_batches


@pytest.mark.parametrize("architecture,alignment", ALIGNED_CASES)
def test_aligned_step_allocates_no_more_than_five_percent_above_its_base(
    architecture, alignment
):
    # torch's allocator accounting (deterministic, unlike RSS), at shapes where the
    # weight-sized buffers weigh more against the batch-sized ones than at scale.
    aligned = build_sae(architecture, TINY_SETTINGS, alignment=alignment)
    base = build_sae(same_step_base(aligned.cfg), TINY_SETTINGS)
    batch = next(random_batches(TINY_SETTINGS.d_in, batch=TINY_SETTINGS.batch))
    peaks = {}
    for name, sae in (("aligned", aligned), ("base", base)):
        trainer = build_trainer(sae, TINY_SETTINGS)
        for _ in range(2):  # optimizer state exists from here
            trainer.step(batch)
        peaks[name] = step_peak_memory(trainer, batch)
    assert peaks["base"]["resident"] < peaks["base"]["peak"]
    assert peaks["aligned"]["peak"] <= 1.05 * peaks["base"]["peak"], peaks
