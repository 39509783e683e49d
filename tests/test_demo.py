"""The demo end to end on the real SmolLM2 model and the real default corpus, at a
tiny budget, plus its input checks and pure helpers."""

import copy
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from sae_lens.training.sae_trainer import SAETrainer

import saelens_aligned.apps.demo as demo
from saelens_aligned import AlignedTopKTrainingSAE, AlignedTopKTrainingSAEConfig, cli
from saelens_aligned.apps.demo import (
    RUN_FILENAME,
    DemoConfig,
    DemoInputError,
    check_output_dir,
    demo_arms,
    run_demo,
)
from saelens_aligned.apps.findings import load_findings
from saelens_aligned.apps.report import summary_table
from saelens_aligned.pipeline.activations import (
    cache_buffer_size_gb,
    is_complete_cache,
)
from saelens_aligned.pipeline.corpora import (
    default_corpus,
    split_documents,
    stdlib_dir,
    stdlib_source_files,
)
from saelens_aligned.pipeline.models import default_model_dir
from saelens_aligned.pipeline.text import DatasetResolutionError, resolve_corpus

# A reduced demo: a few thousand tokens, a small dictionary, one eval batch.
TINY_FLAGS = [
    "--training-tokens", "4096",
    "--d-sae", "128",
    "--k", "8",
    "--train-batch-size-tokens", "256",
    "--context-size", "64",
    "--model-batch-size", "8",
    "--eval-batch-size-prompts", "2",
    "--eval-reconstruction-batches", "1",
    "--eval-sparsity-variance-batches", "2",
]  # fmt: skip
TINY = DemoConfig(
    training_tokens=4096,
    d_sae=128,
    k=8,
    train_batch_size_tokens=256,
    context_size=64,
    model_batch_size=8,
    eval_batch_size_prompts=2,
    eval_reconstruction_batches=1,
    eval_sparsity_variance_batches=2,
)
ARMS = ("aligned_topk", "topk", "topk_balanced_init")
CONTROL = "topk_balanced_init"


def tiny_config(tmp: Path, **overrides: Any) -> DemoConfig:
    fields = {**TINY.__dict__, "output_dir": str(tmp / "report")}
    fields["activations_dir"] = str(tmp / "activations")
    return DemoConfig(**{**fields, **overrides})


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run 1 is interrupted (Ctrl-C) during training; run 2, through the CLI,
    must finish on the activation cache run 1 left behind. Run 2 keeps a copy of
    every SAE as it enters training (step 0)."""
    tmp = tmp_path_factory.mktemp("demo")
    model_dir = default_model_dir()
    corpus = default_corpus()
    weights = model_dir / "model.safetensors"
    model_mtime = weights.stat().st_mtime_ns
    corpus_mtime = Path(corpus.train[0]).stat().st_mtime_ns
    config = tiny_config(tmp)
    mp = pytest.MonkeyPatch()

    def interrupted_fit(self: SAETrainer[Any, Any]) -> None:  # noqa: ARG001
        raise KeyboardInterrupt

    mp.setattr(SAETrainer, "fit", interrupted_fit)
    with pytest.raises(KeyboardInterrupt):
        run_demo(config)
    mp.undo()
    caches = [p for p in Path(config.activations_dir or "").iterdir() if p.is_dir()]
    assert len(caches) == 1 and is_complete_cache(caches[0])
    cache_mtime = (caches[0] / "state.json").stat().st_mtime_ns

    import sae_lens.cache_activations_runner as car

    def no_recaching(self: Any) -> None:  # noqa: ARG001
        raise AssertionError("the activation cache was regenerated")

    mp.setattr(car.CacheActivationsRunner, "run", no_recaching)
    at_step_0: dict[str, Any] = {}
    real_train_sae = demo.train_sae

    def train_sae_keeping_step_0(*args: Any, **kwargs: Any) -> Path:
        at_step_0[Path(args[4]).name] = copy.deepcopy(kwargs["override_sae"])
        return real_train_sae(*args, **kwargs)

    mp.setattr(demo, "train_sae", train_sae_keeping_step_0)
    argv = ["demo", *TINY_FLAGS, "--output", config.output_dir]
    argv += ["--activations-dir", str(config.activations_dir)]
    start = time.monotonic()
    try:
        cli.main(argv)
    finally:
        mp.undo()
    return {
        "out": Path(config.output_dir),
        "cache": caches[0],
        "cache_mtime": cache_mtime,
        "model_dir": model_dir,
        "model_mtime": model_mtime,
        "corpus_path": Path(corpus.train[0]),
        "corpus_mtime": corpus_mtime,
        "seconds": time.monotonic() - start,
        "at_step_0": at_step_0,
        "d_in": 576,
    }


def test_demo_writes_every_report_file(demo_run: dict[str, Any]) -> None:
    out = demo_run["out"]
    for name in (
        "summary.md",
        "metrics.json",
        "run.json",
        "plots/alignment_histograms.png",
        "plots/feature_density_histograms.png",
    ):
        assert (out / name).stat().st_size > 0, name
    for arm in ARMS:
        assert (out / "saes" / arm / "cfg.json").exists()
        assert (out / "saes" / arm / "sae_weights.safetensors").exists()
    summary = (out / "summary.md").read_text()
    assert "| CE-loss score |" in summary
    assert (
        "| metric | `aligned_topk` | `topk` | "
        "fair control (topk from the balanced init) |" in summary
    )
    assert json.loads((out / "run.json").read_text())["status"] == "complete"


def test_demo_report_says_what_longer_training_showed(
    demo_run: dict[str, Any],
) -> None:
    summary = (demo_run["out"] / "summary.md").read_text()
    findings = load_findings()
    assert findings.sentence() in summary
    longest = findings.lengths[-1]
    assert f"{longest.ce_gap.mean:+.3f}" in findings.sentence()
    assert f"{longest.stock.dead_fraction:.3f}" in findings.sentence()


def test_fair_control_starts_from_the_balanced_init(demo_run: dict[str, Any]) -> None:
    saes = demo_run["at_step_0"]
    assert list(saes) == list(ARMS)  # trained in the report's column order
    control, aligned, stock = saes[CONTROL], saes["aligned_topk"], saes["topk"]
    assert type(control) is type(stock) and type(control).__name__ == "TopKTrainingSAE"
    # The balanced start built here from the aligned class itself: the
    # `projected` form at the demo's seed, e_i = d_i at unit norm.
    torch.manual_seed(TINY.seed)
    cfg = AlignedTopKTrainingSAEConfig(
        d_in=demo_run["d_in"], d_sae=TINY.d_sae, k=TINY.k, alignment="projected"
    )
    balanced = AlignedTopKTrainingSAE(cfg)
    for key, tensor in balanced.state_dict().items():
        torch.testing.assert_close(control.state_dict()[key], tensor)
    torch.testing.assert_close(control.W_enc.T, control.W_dec)
    torch.testing.assert_close(
        control.W_dec.norm(dim=1), torch.ones(TINY.d_sae), atol=1e-5, rtol=0
    )
    # At step 0 it computes the aligned SAE's function; the stock base does not.
    x = torch.randn(64, demo_run["d_in"], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = {n: s.decode(s.encode(x)) for n, s in saes.items()}
    torch.testing.assert_close(out[CONTROL], out["aligned_topk"], atol=1e-4, rtol=1e-4)
    assert not torch.allclose(out[CONTROL], out["topk"], atol=1e-2)
    assert not torch.allclose(control.W_dec, stock.W_dec)
    assert aligned.cfg.alignment == "tied"
    # ... and trains without the constraint: its saved decoder left that start.
    from safetensors.torch import load_file

    saved = load_file(demo_run["out"] / "saes" / CONTROL / "sae_weights.safetensors")
    assert not torch.allclose(saved["W_dec"], control.W_dec, atol=1e-4)
    meta = json.loads((demo_run["out"] / "metrics.json").read_text())["meta"]
    assert meta["fair_control"] == CONTROL


def test_demo_metrics_are_all_finite(demo_run: dict[str, Any]) -> None:
    results = json.loads((demo_run["out"] / "metrics.json").read_text())["results"]
    assert list(results) == list(ARMS)
    for arch, result in results.items():
        for key, value in result["metrics"].items():
            assert math.isfinite(value), (arch, key, value)
        for group in result["saebench_core"].values():
            for name, value in group.items():
                assert math.isfinite(value), (arch, name, value)
        assert all(math.isfinite(a) for a in result["alignment_scores"])


def test_exported_aligned_sae_loads_without_the_plugin_and_has_unit_alignment(
    demo_run: dict[str, Any],
) -> None:
    script = (
        "import sys, torch\n"
        "from sae_lens import SAE\n"
        f"sae = SAE.load_from_disk({str(demo_run['out'] / 'saes' / 'aligned_topk')!r})\n"
        "assert not any(m.startswith('saelens_aligned') for m in sys.modules)\n"
        "scores = torch.einsum('df,fd->f', sae.W_enc, sae.W_dec)\n"
        "print(type(sae).__name__, float((scores - 1).abs().max()))\n"
    )
    env = {**os.environ, "PYTHONPATH": ""}
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=demo_run["out"],
        check=True,
    )
    class_name, deviation = done.stdout.split()[-2:]
    assert class_name == "TopKSAE"
    assert float(deviation) <= 1e-4


def test_rerun_after_interruption_reuses_the_activation_cache(
    demo_run: dict[str, Any],
) -> None:
    # The fixture forbids CacheActivationsRunner.run during the second run.
    assert (demo_run["cache"] / "state.json").stat().st_mtime_ns == demo_run[
        "cache_mtime"
    ]


def test_default_model_and_corpus_are_materialised_once(
    demo_run: dict[str, Any],
) -> None:
    start = time.monotonic()
    assert default_model_dir() == demo_run["model_dir"]
    corpus = default_corpus()
    assert time.monotonic() - start < 5.0
    weights = demo_run["model_dir"] / "model.safetensors"
    assert weights.stat().st_mtime_ns == demo_run["model_mtime"]
    assert Path(corpus.train[0]) == demo_run["corpus_path"]
    assert demo_run["corpus_path"].stat().st_mtime_ns == demo_run["corpus_mtime"]


# --------------------------------------------------------------------------- #
# Bad inputs fail fast, before any model runs on text
# --------------------------------------------------------------------------- #


@pytest.fixture
def no_expensive_work(monkeypatch: pytest.MonkeyPatch) -> None:
    import saelens_aligned.apps.demo as demo

    def forbidden(*args: Any, **kwargs: Any) -> None:  # noqa: ARG001
        raise AssertionError("expensive work started before input validation")

    monkeypatch.setattr(demo, "load_source_model", forbidden)
    monkeypatch.setattr(demo, "ensure_activation_cache", forbidden)


@pytest.mark.usefixtures("no_expensive_work")
def test_nonexistent_model_dir_is_rejected_before_work(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-model")
    with pytest.raises(DemoInputError, match="no such model directory"):
        run_demo(tiny_config(tmp_path, model=missing))


@pytest.mark.usefixtures("no_expensive_work")
def test_unknown_dataset_offline_says_the_hub_is_unreachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DemoInputError, match="unreachable") as info:
        run_demo(tiny_config(tmp_path, dataset="someone/some-dataset"))
    assert "--dataset a.txt" in str(info.value)


@pytest.mark.usefixtures("no_expensive_work")
def test_unknown_hook_lists_valid_nearby_names(tmp_path: Path) -> None:
    with pytest.raises(DemoInputError, match="does not exist") as info:
        run_demo(tiny_config(tmp_path, hook="model.layer.3"))
    assert "model.layers.3" in str(info.value)


def test_output_folder_of_a_different_run_needs_overwrite(tmp_path: Path) -> None:
    config = tiny_config(tmp_path)
    out = Path(config.output_dir)
    out.mkdir()
    other = {**config.run_identity(), "d_sae": 999}
    (out / RUN_FILENAME).write_text(json.dumps({"config": other}))
    with pytest.raises(DemoInputError, match="--overwrite"):
        check_output_dir(config)
    assert check_output_dir(tiny_config(tmp_path, overwrite=True)) == out
    (out / RUN_FILENAME).write_text(json.dumps({"config": config.run_identity()}))
    assert check_output_dir(config) == out  # the same run may be repeated


def test_output_folder_with_foreign_files_needs_overwrite(tmp_path: Path) -> None:
    config = tiny_config(tmp_path)
    Path(config.output_dir).mkdir()
    (Path(config.output_dir) / "notes.txt").write_text("mine")
    with pytest.raises(DemoInputError, match="something else"):
        check_output_dir(config)


@pytest.mark.usefixtures("no_expensive_work")
def test_cli_reports_bad_input_as_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["demo", "--model", str(tmp_path / "nope"), "--output", str(tmp_path)])
    assert info.value.code == 2
    assert "no such model directory" in capsys.readouterr().err


# --------------------------------------------------------------------------- #
# Corpus, report and CLI helpers
# --------------------------------------------------------------------------- #


def test_stdlib_corpus_leaves_out_tests_and_site_packages() -> None:
    root = stdlib_dir()
    files = stdlib_source_files(root)
    assert len(files) > 100
    assert files == sorted(files, key=lambda p: p.relative_to(root).as_posix())
    for path in files:
        parts = path.relative_to(root).parts
        assert "site-packages" not in parts and "test" not in parts[:-1]


def test_corpus_split_is_deterministic_and_disjoint() -> None:
    texts = [f"doc {i}" for i in range(95)]
    train, held_out = split_documents(texts)
    assert (train, held_out) == split_documents(texts)
    assert len(held_out) == 9 and sorted(train + held_out) == sorted(texts)


def test_local_text_files_are_used_as_the_corpus(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello world\n")
    (tmp_path / "b.txt").write_text("more text\n")
    corpus = resolve_corpus(str(tmp_path))
    assert corpus.train == (str(tmp_path / "a.txt"), str(tmp_path / "b.txt"))
    with pytest.raises(DatasetResolutionError, match="no such file"):
        resolve_corpus(str(tmp_path / "missing.jsonl"))


def test_summary_table_bolds_the_better_value() -> None:
    def result(ev: float, dead: float) -> dict[str, Any]:
        metrics = {"explained_variance": ev, "dead_fraction": dead}
        return {"metrics": metrics, "alignment": {"mean": 1.0}}

    table = summary_table({"a": result(0.7, 0.1), "b": result(0.5, 0.0)})
    assert "| explained variance (about the mean) | **0.7000** | 0.5000 |" in table
    assert "| dead fraction | 0.1000 | **0.0000** |" in table


@pytest.mark.parametrize("command", [c for c in cli.SUBCOMMANDS if c != "train"])
def test_every_subcommand_has_help(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main([command, "--help"])
    assert info.value.code == 0
    assert "usage: saelens-aligned" in capsys.readouterr().out


def test_demo_help_documents_the_cache_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["demo", "--help"])
    out = capsys.readouterr().out
    for flag in ("--cache-dir", "--model", "--model-class", "--dataset", "--overwrite"):
        assert flag in out


@pytest.mark.parametrize(
    ("tokens", "prompts", "context"), [(160_000, 16, 128), (4096, 8, 64), (1000, 4, 64)]
)
def test_activation_cache_buffers_cover_the_budget_without_a_spare_buffer(
    tokens: int, prompts: int, context: int
) -> None:
    from sae_lens import CacheActivationsRunnerConfig

    size = cache_buffer_size_gb(tokens, prompts * context, 576 * 4)
    cfg = CacheActivationsRunnerConfig(
        dataset_path="text",
        model_name="model",
        model_batch_size=prompts,
        hook_name="hook",
        d_in=576,
        training_tokens=tokens,
        context_size=context,
        buffer_size_gb=size,
        new_cached_activations_path="unused",
    )
    cached = cfg.n_buffers * cfg.n_tokens_in_buffer
    assert tokens <= cached < tokens + cfg.n_buffers * prompts * context


def test_only_an_aligned_architecture_gets_a_fair_control(tmp_path: Path) -> None:
    arms = demo_arms(tiny_config(tmp_path, architecture="aligned"), "standard")
    assert [(a.name, a.architecture, a.start_from) for a in arms] == [
        ("aligned", "aligned", None),
        ("standard", "standard", None),
        ("standard_balanced_init", "standard", "projected"),
    ]
    arms = demo_arms(tiny_config(tmp_path, architecture="topk"), "standard")
    assert [a.name for a in arms] == ["topk", "standard"]


def test_baseline_defaults_to_the_aligned_architectures_base(tmp_path: Path) -> None:
    from saelens_aligned.apps.demo import validate

    with pytest.raises(DemoInputError, match="--baseline explicitly"):
        validate(tiny_config(tmp_path, architecture="topk"))
    with pytest.raises(DemoInputError, match="not a registered"):
        validate(tiny_config(tmp_path, architecture="nope"))


def test_demo_pretrained_evaluates_a_released_sae_without_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAELENS_ALIGNED_CACHE", str(tmp_path / "cache"))

    def no_training(*_: Any, **__: Any) -> None:
        raise AssertionError("--pretrained trained an SAE")

    monkeypatch.setattr(SAETrainer, "fit", no_training)
    out = tmp_path / "report"
    release = "smollm2-135m-instruct-res-aligned-topk-8x/layer_3"
    cli.main(
        ["demo", "--pretrained", release, "--output", str(out)]
        + ["--context-size", "64", "--eval-batch-size-prompts", "2"]
        + [
            "--eval-reconstruction-batches",
            "1",
            "--eval-sparsity-variance-batches",
            "2",
        ]
    )
    results = json.loads((out / "metrics.json").read_text())["results"]
    metrics = results[release]["metrics"]
    assert all(math.isfinite(v) for v in metrics.values()), metrics
    assert 0 < metrics["l0"] <= 32 and metrics["ce_loss_score"] > 0.5
    assert abs(results[release]["alignment"]["mean"] - 1) < 1e-5
    assert json.loads((out / "run.json").read_text())["status"] == "complete"
    summary = (out / "summary.md").read_text()
    assert f"Released SAE `{release}`" in summary
    assert "no stock base or fair control" in summary
    assert "`model.layers.3` (d_in 576)" in summary
    assert not (out / "saes").exists()  # nothing trained, nothing saved


def test_demo_pretrained_names_the_form_it_needs(tmp_path: Path) -> None:
    with pytest.raises(DemoInputError, match="RELEASE/SAE_ID"):
        run_demo(DemoConfig(pretrained="layer_3", output_dir=str(tmp_path / "r")))
    with pytest.raises(DemoInputError, match="no-such-release"):
        run_demo(
            DemoConfig(pretrained="no-such-release/x", output_dir=str(tmp_path / "r"))
        )
