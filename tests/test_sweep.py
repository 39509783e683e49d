"""The benchmark sweep end to end: the `ci` preset, resume after kills, `eval`."""

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from benchmarks.records.layout import (
    RUN_LOG,
    flat_metrics,
    load_records,
    read_run_log,
    run_info,
)
from benchmarks.sweeps.config import ArchitectureSweep, SweepConfigError, SweepError
from benchmarks.sweeps.folder import check_out_dir
from benchmarks.sweeps.presets import PRESETS, load_sweep_config
from benchmarks.sweeps.runs import expand_runs
from benchmarks.sweeps.sweep import run_sweep

REPO = Path(__file__).resolve().parents[1]
CORE_METRICS = (
    "ce_loss_score",
    "kl_div_score",
    "explained_variance",
    "mse",
    "l0",
    "l1",
    "dead_fraction",
    "alive_fraction",
    "cossim",
    "l2_ratio",
    "meta_structure_fve",
    "alignment_mean",
)


def sweep_command(out: Path, preset: str = "ci") -> list[str]:
    return [
        sys.executable,
        "-m",
        "benchmarks",
        "sweep",
        "--preset",
        preset,
        "--out",
        str(out),
        "--no-report",
    ]


def subprocess_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def ci_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ci_sweep") / "sweep"
    run_sweep(load_sweep_config("ci"), out)
    return out


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_loads_and_expands(preset):
    config = load_sweep_config(preset)
    runs = expand_runs(config)
    assert len({r.run_id for r in runs}) == len(runs)
    assert len(config.seeds) >= 2


def test_ci_preset_covers_four_architectures_two_seeds_two_sparsities():
    runs = expand_runs(load_sweep_config("ci"))
    labels = {r.label for r in runs}
    assert len({r.architecture for r in runs}) >= 4
    for label in labels:
        mine = [r for r in runs if r.label == label]
        assert len({r.seed for r in mine}) >= 2
        assert len({r.sparsity_value for r in mine}) >= 2


def test_ci_sweep_writes_a_valid_finite_record_per_run(ci_sweep):
    expected = {r.run_id for r in expand_runs(load_sweep_config("ci"))}
    files = sorted((ci_sweep / "records").glob("*.json"))
    for path in files:
        json.loads(path.read_text())  # valid JSON, not only loadable by us
    runs, _ = load_records(ci_sweep)
    assert {run_info(r)["run_id"] for r in runs} == expected
    for record in runs:
        # SAEBench's result layout.
        for key in ("eval_type_id", "eval_config", "eval_id", "eval_result_metrics"):
            assert key in record
        values = flat_metrics(record)
        bad = {m: values[m] for m in CORE_METRICS if not math.isfinite(values[m])}
        assert not bad, f"{run_info(record)['run_id']}: non-finite {bad}"
        skipped = record["eval_result_unstructured"]["skipped_evals"]
        assert "sparse_probing" in skipped and skipped["sparse_probing"]
    aligned = [r for r in runs if run_info(r)["alignment"] is not None]
    assert aligned
    for record in aligned:
        assert abs(flat_metrics(record)["alignment_mean"] - 1) < 1e-4


def test_ci_sweep_stability_lies_in_unit_interval(ci_sweep):
    _, stability = load_records(ci_sweep)
    points = {r.point_id for r in expand_runs(load_sweep_config("ci"))}
    assert len(stability) == len(points)
    for record in stability:
        values = record["eval_result_metrics"]["stability"]
        assert 0.0 <= values["shared_fraction_mean"] <= 1.0
        assert -1.0 <= values["mean_matched_decoder_cos"] <= 1.0


def test_ci_sweep_report_has_plots_and_claim_table(ci_sweep):
    report = ci_sweep / "report"
    plots = list(report.glob("*.png"))
    assert plots
    for plot in plots:
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (report / "report.md").read_text()
    assert "claim" in text.lower()


def test_report_rerenders_from_records_alone(ci_sweep, tmp_path):
    copy = tmp_path / "copy"
    (copy / "records").mkdir(parents=True)
    for path in (ci_sweep / "records").glob("*.json"):
        (copy / "records" / path.name).write_bytes(path.read_bytes())
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "report", str(copy)],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (copy / "report" / "report.md").exists()


def records_snapshot(out: Path) -> dict[str, dict[str, float]]:
    runs, _ = load_records(out)
    return {run_info(r)["run_id"]: flat_metrics(r) for r in runs}


def test_killed_sweep_resumes_to_the_uninterrupted_records(ci_sweep, tmp_path):
    """Killed (SIGKILL) three times at random moments, restarted each time: the
    final record set equals the uninterrupted sweep's, with no run trained twice."""
    out = tmp_path / "killed"
    rng = random.Random(0)
    log = out / RUN_LOG
    for _ in range(3):
        proc = subprocess.Popen(
            sweep_command(out),
            env=subprocess_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # Wait until this process has started at least one new run, then kill it
        # at a random moment of that run (training, evaluation or record write).
        lines_before = len(log.read_text().splitlines()) if log.exists() else 0
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if log.exists() and len(log.read_text().splitlines()) > lines_before:
                break
            time.sleep(0.2)
        time.sleep(rng.uniform(0.0, 6.0))
        assert proc.poll() is None, "the sweep finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    final = subprocess.run(
        sweep_command(out),
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert final.returncode == 0, final.stderr[-3000:]

    reference = records_snapshot(ci_sweep)
    resumed = records_snapshot(out)
    assert sorted(resumed) == sorted(reference)  # none missing, none extra
    for path in (out / "records").glob("*.json"):
        json.loads(path.read_text())  # none corrupt
    assert not list((out / "records").glob(".*")), "temporary files left behind"
    for run_id, values in resumed.items():
        for name in ("l0", "explained_variance", "alignment_mean"):
            assert math.isfinite(values[name]), (run_id, name)
    trained: dict[str, int] = {}
    for event in read_run_log(out):
        if event["event"] == "trained":
            trained[event["run_id"]] = trained.get(event["run_id"], 0) + 1
    assert trained and max(trained.values()) == 1, trained
    # Same seeds, same cached activations: training is deterministic on CPU.
    for run_id, values in reference.items():
        if values["l0"] == values["l0"] and "topk" in run_id:
            assert resumed[run_id]["l0"] == pytest.approx(values["l0"])


def test_sweep_refuses_an_output_folder_of_another_sweep(ci_sweep):
    config = load_sweep_config("ci")
    config.lr = config.lr * 2
    with pytest.raises(SweepError, match="different config"):
        run_sweep(config, ci_sweep)


def test_a_config_that_only_appends_arms_extends_the_sweep(tmp_path):
    config = load_sweep_config("ci")
    (tmp_path / "sweep.json").write_text(json.dumps(config.to_dict()))
    extended = replace(
        config,
        architectures=[
            *config.architectures,
            ArchitectureSweep("gated", "l1_coefficient", [1.0, 2.0]),
        ],
    )
    check_out_dir(extended, tmp_path)  # accepted: the old runs keep their ids
    reordered = replace(config, architectures=config.architectures[::-1])
    dropped = replace(config, architectures=config.architectures[1:])
    changed = replace(extended, lr=config.lr * 2)
    for other in (reordered, dropped, changed):
        with pytest.raises(SweepError, match="only appends entries"):
            check_out_dir(other, tmp_path)


def test_sweep_config_errors_name_the_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: bad\narchitectures:\n"
        "  - {architecture: topk, sparsity_param: k, sparsity_values: [0]}\n"
    )
    with pytest.raises(SweepConfigError, match=r"architectures\[0\].sparsity_values"):
        load_sweep_config(path)
    path.write_text("name: bad\nlearning_rate: 0.1\n")
    with pytest.raises(SweepConfigError, match="unknown field.*learning_rate"):
        load_sweep_config(path)
    path.write_text(
        "name: bad\narchitectures:\n"
        "  - {architecture: topkk, sparsity_param: k, sparsity_values: [8]}\n"
    )
    with pytest.raises(SweepConfigError, match="topkk.*Valid"):
        load_sweep_config(path)


STOCK_SAE_SCRIPT = """
import sys
from sae_lens import StandardSAE, StandardSAEConfig
from sae_lens.saes.sae import SAEMetadata
assert "saelens_aligned" not in sys.modules
cfg = StandardSAEConfig(d_in=576, d_sae=64)
cfg.metadata = SAEMetadata(
    hook_name="model.layers.3",
    context_size=64,
    model_class_name="AutoModelForCausalLM",
)
StandardSAE(cfg).save_model(sys.argv[1])
assert "saelens_aligned" not in sys.modules
"""


def test_eval_command_evaluates_a_stock_saelens_sae(tmp_path):
    sae_dir = tmp_path / "stock_sae"
    made = subprocess.run(
        [sys.executable, "-c", STOCK_SAE_SCRIPT, str(sae_dir)],
        env=subprocess_env(),
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr[-2000:]
    out = tmp_path / "evals"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "eval",
            str(sae_dir),
            "--out",
            str(out),
            "--batch-size-prompts",
            "2",
            "--reconstruction-batches",
            "1",
            "--sparsity-variance-batches",
            "2",
            "--no-meta-structure",
        ],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs, _ = load_records(out)
    assert len(runs) == 1
    values = flat_metrics(runs[0])
    assert run_info(runs[0])["architecture"] == "standard"
    for name in ("ce_loss_score", "explained_variance", "l0", "alignment_mean"):
        assert math.isfinite(values[name]), name


def test_eval_command_names_a_folder_that_is_not_an_sae(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "eval", str(tmp_path), "--out", "x"],
        env=subprocess_env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "cfg.json" in result.stderr and str(tmp_path) in result.stderr


def test_ray_executor_runs_a_sweep_on_a_local_ray_instance(tmp_path):
    """Runs are Ray tasks; the records match a local run of the same config."""
    from dataclasses import replace

    from benchmarks.sweeps.config import ArchitectureSweep

    config = replace(
        load_sweep_config("ci"),
        architectures=[ArchitectureSweep("aligned_topk", "k", [8], ["tied"])],
        eval=replace(load_sweep_config("ci").eval, meta_structure=False),
    )
    records = run_sweep(config, tmp_path / "ray", executor="ray", report=False)
    assert sorted(run_info(r)["run_id"] for r in records) == sorted(
        r.run_id for r in expand_runs(config)
    )
    pids = {e["pid"] for e in read_run_log(tmp_path / "ray") if e["event"] == "trained"}
    assert os.getpid() not in pids  # trained in Ray workers, not in this process
    for record in records:
        assert math.isfinite(flat_metrics(record)["explained_variance"])


def test_a_folder_swept_before_the_probing_evals_existed_still_resumes(tmp_path):
    config = load_sweep_config("ci")
    written = config.to_dict()
    for name in ("sparse_probing", "sae_probes", "tpp", "probing_size"):
        written["eval"].pop(name)
    written["eval"].pop("probing_sparsity_values")
    (tmp_path / "sweep.json").write_text(json.dumps(written))
    check_out_dir(config, tmp_path)  # the new evals at their default (off)
    # ... or on: they apply to runs evaluated from then on.
    check_out_dir(replace(config, eval=replace(config.eval, tpp=True)), tmp_path)
    changed = replace(config, eval=replace(config.eval, batch_size_prompts=3))
    with pytest.raises(SweepError, match="different config"):
        check_out_dir(changed, tmp_path)
