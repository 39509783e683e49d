"""The committed records carry explained variance about the mean, as
`python -m benchmarks.records.explained_variance` writes it: LM records
recovered from SAEBench's value and the committed moments, synthetic records
SAELens' own value; rerunning the command changes nothing."""

import json
import shutil
from pathlib import Path

import pytest

from benchmarks.records.explained_variance import (
    MOMENTS_FILE,
    RESULTS,
    fill,
    read_moments,
    record_paths,
)
from benchmarks.records.layout import EVAL_TYPE_ID, flat_metrics
from saelens_aligned.pipeline.eval_moments import RECORD_KEY


def run_records(results: Path) -> list[tuple[Path, dict]]:
    out = []
    for path in record_paths(results):
        record = json.loads(path.read_text())
        if record["eval_type_id"] == EVAL_TYPE_ID:
            out.append((path, record))
    return out


def test_every_committed_run_record_has_explained_variance_about_the_mean() -> None:
    moments = read_moments()
    for path, record in run_records(RESULTS):
        quality = record["eval_result_metrics"]["reconstruction_quality"]
        how = record["eval_result_unstructured"][RECORD_KEY]
        assert quality[RECORD_KEY] == flat_metrics(record)["explained_variance"]
        if record["eval_config"]["sweep"]["kind"] == "synthetic":
            assert how["computed_by"].startswith("sae_lens.evals")
            assert quality[RECORD_KEY] == quality["explained_variance"], path
        else:
            assert how["eval_set"] in moments, path
            # Below SAEBench's about-zero value wherever that is below 1.
            if quality["explained_variance"] < 1:
                assert quality[RECORD_KEY] < quality["explained_variance"], path


@pytest.mark.parametrize("sweep", ["cpu_code", "synthetic_cpu"])
def test_the_command_is_idempotent_and_restores_a_removed_value(
    sweep: str, tmp_path: Path
) -> None:
    """On a copy of a few committed records: nothing to write, then a removed
    value written back as it was."""
    results = tmp_path / "results"
    records = results / sweep / "records"
    records.mkdir(parents=True)
    chosen = [p for p, _ in run_records(RESULTS / sweep)][:3]
    for path in chosen:
        shutil.copy(path, records / path.name)
    assert fill(results, compute=False, moments_file=MOMENTS_FILE)["written"] == 0
    target = records / chosen[0].name
    before = json.loads(target.read_text())
    stripped = json.loads(target.read_text())
    del stripped["eval_result_metrics"]["reconstruction_quality"][RECORD_KEY]
    del stripped["eval_result_unstructured"][RECORD_KEY]
    target.write_text(json.dumps(stripped) + "\n")
    counts = fill(results, compute=False, moments_file=MOMENTS_FILE)
    assert counts == {"written": 1, "unchanged": 2, "missing_moments": 0}
    assert json.loads(target.read_text()) == before
