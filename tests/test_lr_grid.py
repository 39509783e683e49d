"""The learning-rate pass: an arm whose best rate is its grid's edge gets the
grid extended past it (to a stated bound), and the rate is chosen on a
validation split the reported metrics never read."""

import json
import math
from pathlib import Path

import pytest

from benchmarks.records.layout import (
    EVAL_TYPE_ID,
    LR_CHOICE_FILENAME,
    SWEEP_FILENAME,
    grid_record_path,
    read_record,
    write_json_atomic,
)
from benchmarks.sweeps.backends.validation_split import (
    ValidationSplitError,
    validation_corpus,
    validation_rows,
)
from benchmarks.sweeps.config import SweepConfig, SweepConfigError
from benchmarks.sweeps.lr_grid import expand_lr_grid, record_split, run_lr_grid
from benchmarks.sweeps.lr_rule import bound_edge, ladder_step, next_rate
from benchmarks.sweeps.presets import sweep_config_from_dict
from benchmarks.sweeps.runs import RunSpec
from saelens_aligned.pipeline.corpora import TextCorpus
from saelens_aligned.pipeline.eval_moments import RECORD_KEY
from saelens_aligned.pipeline.text import load_corpus_split
from tests.test_synthetic_backend import tiny_config


def config(**overrides: object) -> SweepConfig:
    data = {
        "name": "grid",
        "kind": "synthetic",
        "synthetic_model": {"num_features": 8, "hidden_dim": 4},
        "d_sae": [16],
        "lr_grid": [1e-3, 3e-3, 1e-2],
        "architectures": [
            {"architecture": "topk", "sparsity_param": "k", "sparsity_values": [4]},
            {
                "architecture": "standard",
                "sparsity_param": "l1_coefficient",
                "sparsity_values": [1, 2, 4],
            },
        ],
        **overrides,
    }
    return sweep_config_from_dict(data)


def test_the_ladder_repeats_the_grids_leading_digits_in_every_decade():
    grid = [1e-3, 3e-3, 1e-2]
    assert ladder_step(grid, 1e-3, "low") == pytest.approx(3e-4)
    assert ladder_step(grid, 3e-4, "low") == pytest.approx(1e-4)
    assert ladder_step(grid, 1e-2, "high") == pytest.approx(3e-2)
    assert ladder_step([3e-4, 1e-3, 3e-3, 1e-2], 3e-4, "low") == pytest.approx(1e-4)
    assert ladder_step([1e-4, 5e-4, 2e-3], 1e-4, "low") == pytest.approx(5e-5)


def test_next_rate_steps_past_an_edge_and_stops_inside_or_at_a_bound():
    sweep = config(lr_floor=2e-4, lr_ceiling=2e-2)
    rates = [1e-3, 3e-3, 1e-2]
    assert next_rate(sweep, rates, 3e-3) is None  # interior: done
    assert next_rate(sweep, rates, 1e-3) == pytest.approx(3e-4)
    assert next_rate(sweep, rates, 1e-2) == pytest.approx(2e-2)  # clipped
    # The bound itself is tried, then the edge stays, explained by the bound.
    assert next_rate(sweep, [3e-4, *rates], 3e-4) == pytest.approx(2e-4)
    assert next_rate(sweep, [2e-4, 3e-4, *rates], 2e-4) is None
    assert bound_edge(sweep, [2e-4, 3e-4, *rates], 2e-4) == "low"
    assert bound_edge(sweep, [3e-4, *rates], 3e-4) is None
    assert bound_edge(sweep, [*rates, 2e-2], 2e-2) == "high"


def test_a_grid_outside_its_bounds_is_a_config_error():
    with pytest.raises(SweepConfigError, match="lr_grid"):
        config(lr_floor=2e-3)
    with pytest.raises(SweepConfigError, match="lr_split"):
        config(lr_split="test")


def scored_execute(out_dir: Path, score, split: str = "validation"):
    """An executor that writes the record of each grid run without one, with
    `score(run)` as its explained variance (and L0 10), as a backend scoring on
    `split` would; `calls` lists the runs it had to do in each call."""
    calls: list[list[str]] = []

    def execute(runs: list[RunSpec]) -> None:
        todo = [r for r in runs if not grid_record_path(out_dir, r.run_id).exists()]
        calls.append([r.run_id for r in todo])
        for run in todo:
            path = grid_record_path(out_dir, run.run_id)
            write_json_atomic(
                path,
                {
                    "eval_type_id": EVAL_TYPE_ID,
                    "eval_config": {"run": {"label": run.label, "lr": run.lr}},
                    "eval_result_metrics": {
                        "reconstruction_quality": {RECORD_KEY: score(run)},
                        "sparsity": {"l0": 10.0},
                    },
                    "eval_result_unstructured": {"eval_split": split},
                },
            )

    return execute, calls


def peaked(best: float):
    """A score that falls with the log-distance of the rate from `best`."""
    return lambda run: 1.0 - abs(math.log10(run.lr / best))


def test_an_edge_arm_is_extended_until_its_best_rate_is_interior(tmp_path: Path):
    sweep = config()
    (tmp_path / SWEEP_FILENAME).write_text(json.dumps(sweep.to_dict()))
    execute, calls = scored_execute(tmp_path, peaked(1e-4))
    chosen = run_lr_grid(sweep, tmp_path, execute)
    assert chosen == {"topk": pytest.approx(1e-4), "standard": pytest.approx(1e-4)}
    choice = json.loads((tmp_path / LR_CHOICE_FILENAME).read_text())
    assert set(choice) == {"metric", "grid", "grid_l0", "chosen", "edge", "split"}
    assert list(choice["grid"]["topk"]) == [
        "3e-05",
        "0.0001",
        "0.0003",
        "0.001",
        "0.003",
        "0.01",
    ]
    assert choice["edge"] == {"topk": None, "standard": None}
    assert choice["split"] == {"topk": "validation", "standard": "validation"}
    # One round per extension: the grid, then 3e-4, 1e-4, 3e-5 for both arms.
    assert [len(c) for c in calls] == [6, 2, 2, 2]

    # Resuming derives the same extensions from the records and trains nothing.
    again, calls_again = scored_execute(tmp_path, lambda _run: math.nan)
    assert run_lr_grid(sweep, tmp_path, again) == chosen
    assert [len(c) for c in calls_again] == [0, 0, 0, 0]


def test_an_arm_still_best_at_the_floor_keeps_an_explained_edge(tmp_path: Path):
    sweep = config(lr_floor=1e-4, lr_ceiling=1e-2)
    (tmp_path / SWEEP_FILENAME).write_text(json.dumps(sweep.to_dict()))
    execute, _ = scored_execute(tmp_path, lambda run: -run.lr)  # lower is better
    chosen = run_lr_grid(sweep, tmp_path, execute, labels=["topk"])
    assert chosen == {"topk": pytest.approx(1e-4)}
    choice = json.loads((tmp_path / LR_CHOICE_FILENAME).read_text())
    assert choice["edge"] == {"topk": "low"}
    assert sorted(map(float, choice["grid"]["topk"])) == pytest.approx(
        [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]
    )


def test_grid_records_scored_on_eval_data_are_scored_again(tmp_path: Path):
    """A sweep folder chosen on the eval data (before the validation split):
    its grid records move to records/superseded/ and the runs are scored again;
    an arm left alone keeps its choice, marked as chosen on eval."""
    sweep = config()
    (tmp_path / SWEEP_FILENAME).write_text(json.dumps(sweep.to_dict()))
    old, _ = scored_execute(tmp_path, peaked(3e-3), split="eval")
    old(expand_lr_grid(sweep))
    write_json_atomic(
        tmp_path / LR_CHOICE_FILENAME,
        {"metric": "explained_variance", "grid": {}, "chosen": {"standard": 3e-3}},
    )
    execute, _ = scored_execute(tmp_path, peaked(3e-3))
    run_lr_grid(sweep, tmp_path, execute, labels=["topk"])
    topk = expand_lr_grid(sweep, labels=["topk"])
    for run in topk:
        assert record_split(read_record(grid_record_path(tmp_path, run.run_id))) == (
            "validation"
        )
    superseded = tmp_path / "records" / "superseded" / "lr_grid"
    assert sorted(p.stem for p in superseded.glob("*.json")) == sorted(
        r.run_id for r in topk
    )
    choice = json.loads((tmp_path / LR_CHOICE_FILENAME).read_text())
    assert choice["split"] == {"standard": "eval", "topk": "validation"}
    assert choice["edge"] == {"standard": None, "topk": None}


def test_synthetic_validation_samples_are_not_the_eval_samples(tmp_path: Path):
    from benchmarks.sweeps.backends.synthetic import SyntheticBackend

    backend = SyntheticBackend(tiny_config(), tmp_path)
    validation, evaluation = backend.validation_samples(), backend.eval_samples()
    assert len(validation) == len(evaluation)
    assert not (
        validation.offsets.equal(evaluation.offsets)
        and validation.feature_index.equal(evaluation.feature_index)
    )
    assert (tmp_path / "synthetic_data" / "validation.safetensors").exists()


def test_a_synthetic_grid_run_is_scored_on_validation_and_its_main_run_on_eval(
    tmp_path: Path,
):
    from benchmarks.records.layout import record_path
    from benchmarks.sweeps.runs import main_runs
    from benchmarks.sweeps.sweep import run_sweep

    data = tiny_config().to_dict()
    data.update(seeds=[0], lr_grid=[1e-3, 3e-3, 1e-2], lr_floor=1e-3, lr_ceiling=1e-2)
    data["eval"] = {**data["eval"], "meta_structure": False}
    data["architectures"] = data["architectures"][:1]
    sweep = sweep_config_from_dict(data)
    run_sweep(sweep, tmp_path, report=False)
    grid = [read_record(p) for p in (tmp_path / "records" / "lr_grid").glob("*.json")]
    assert {record_split(r) for r in grid} == {"validation"}
    (main,) = main_runs(sweep, tmp_path)
    record = read_record(record_path(tmp_path, main.run_id))
    assert record_split(record) == "eval"
    # Same SAE (seed 0 at the chosen rate), scored on different samples.
    gridded = read_record(grid_record_path(tmp_path, main.run_id))
    assert (
        gridded["eval_result_metrics"]["reconstruction_quality"]
        != (record["eval_result_metrics"]["reconstruction_quality"])
    )
    # The main run trained nothing: its record carries the grid run's training
    # time, the time its SAE took, not the ~0 s it spent loading it.
    seconds = gridded["eval_result_metrics"]["training"]["seconds"]
    assert seconds > 0
    assert record["eval_result_metrics"]["training"]["seconds"] == seconds


def write_rows(path: Path, n: int, prefix: str) -> Path:
    lines = (json.dumps({"text": f"{prefix}{i} " * 20}) + "\n" for i in range(n))
    path.write_text("".join(lines))
    return path


def test_lm_validation_rows_are_the_training_splits_tail(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("SAELENS_ALIGNED_CACHE", str(tmp_path / "cache"))
    train = write_rows(tmp_path / "train.jsonl", 50, "row")
    held = write_rows(tmp_path / "eval.jsonl", 5, "held")
    corpus = TextCorpus(name="t", train=(str(train),), eval=(str(held),))
    words = lambda text: len(text.split())  # noqa: E731
    # 45 rows of 20 words before the validation rows: 900 >= 2 x 400.
    validation = validation_corpus(corpus, 400, words)
    rows = [r["text"] for r in load_corpus_split(validation, "eval")]
    assert (
        rows
        == [f"row{i} " * 20 for i in validation_rows(50)]
        == [f"row{i} " * 20 for i in range(45, 50)]
    )
    # The training cache's rows never reach them; eval text is untouched.
    assert [r["text"] for r in load_corpus_split(corpus, "eval")] == [
        f"held{i} " * 20 for i in range(5)
    ]
    with pytest.raises(ValidationSplitError, match="lr_split"):
        validation_corpus(corpus, 500, words)  # 900 < 2 x 500


def test_rerunning_an_unknown_arm_is_one_line_and_exit_status_2(tmp_path, capsys):
    from benchmarks.sweeps.rerun_arms import main

    with pytest.raises(SystemExit) as exit_:
        main(["--preset", "synthetic_cpu", "--out", str(tmp_path), "--arms", "nope"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--arms: ['nope']" in err
