"""Every command line reports bad input as one `PROG: error: ...` line naming
the field, with exit status 2 and no traceback, before any expensive work."""

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from benchmarks.__main__ import main as benchmarks_main
from saelens_aligned.cli import main as cli_main
from tests.conftest import make_sae

ROOT = Path(__file__).resolve().parents[1]


def assert_input_error(
    main: Callable[[Sequence[str]], None],
    argv: list[str],
    capsys: pytest.CaptureFixture[str],
    prog: str,
    *words: str,
) -> str:
    """`main(argv)` exits 2 with one stderr line `prog: error: ...` holding
    every one of `words`; returns that line."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{prog}: error: "), lines[0]
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


@pytest.fixture
def pickle_only_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "sae.pt").write_bytes(b"\x80\x04K\x01.")
    return folder


@pytest.fixture
def sae_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "stock"
    sae = make_sae("topk", d_in=16, d_sae=32)
    sae.cfg.metadata.hook_name = "model.layers.3"
    sae.save_inference_model(folder)
    return folder


# --------------------------------------------------------------------------- #
# saelens-aligned train / align
# --------------------------------------------------------------------------- #

TRAIN = "saelens-aligned train"


@pytest.mark.parametrize(
    "args,words",
    [
        (["--architecture", "topk", "--k", "100", "--d_sae", "64"], ["k=100", "d_sae"]),
        (["--architecture", "aligned_bogus"], ["--architecture", "aligned_topk"]),
        (["--architecture", "topk", "--k", "abc"], ["--k", "abc"]),
        (
            ["--architecture", "topk", "--k", "8", "--d_sae", "64", "--lr", "-1"],
            ["lr=-1"],
        ),
        (["--architecture", "topk", "--d_sae", "0"], ["d_sae=0"]),
        (
            ["--architecture", "aligned_topk", "--alignment", "sideways"],
            ["--alignment", "sideways"],
        ),
    ],
    ids=[
        "k-above-d_sae",
        "unknown-architecture",
        "not-an-int",
        "negative-lr",
        "d_sae-0",
        "bad-form",
    ],
)
def test_train_reports_bad_input_in_one_line(args, words, capsys):
    assert_input_error(cli_main, ["train", *args], capsys, TRAIN, *words)


ALIGN = "saelens-aligned align"


def test_align_reports_a_missing_source(tmp_path, capsys):
    assert_input_error(
        cli_main,
        ["align", str(tmp_path / "nope"), "--dataset", "x.txt"],
        capsys,
        ALIGN,
        "source",
        str(tmp_path / "nope"),
    )


def test_align_reports_a_pickle_only_folder(pickle_only_dir, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["align", str(pickle_only_dir), "--dataset", "x.txt", "--output-dir"]
    assert_input_error(cli_main, [*argv, str(out)], capsys, ALIGN, "cfg.json")
    assert not out.exists()


@pytest.mark.parametrize(
    "flags,words",
    [
        (["--tokens", "-5"], ["--tokens", "-5"]),
        (["--lr", "0"], ["--lr"]),
        (["--eval-fraction", "1.5"], ["--eval-fraction"]),
        (["--architecture", "topk"], ["--architecture", "aligned_topk"]),
        (["--set", "l1_coefficent=5"], ["--set", "l1_coefficent"]),
    ],
    ids=["negative-tokens", "zero-lr", "fraction", "not-aligned", "unknown-set"],
)
def test_align_reports_bad_settings_before_loading_a_model(
    sae_dir, tmp_path, flags, words, capsys
):
    # The dataset does not exist: each check must fire before the source's.
    argv = ["align", str(sae_dir), "--dataset", str(tmp_path / "none.txt"), *flags]
    assert_input_error(cli_main, argv, capsys, ALIGN, *words)


def test_align_reports_a_missing_dataset(sae_dir, tmp_path, capsys):
    argv = ["align", str(sae_dir), "--dataset", str(tmp_path / "none.txt")]
    argv += ["--model", str(tmp_path / "no-model")]
    assert_input_error(cli_main, argv, capsys, ALIGN)


# --------------------------------------------------------------------------- #
# python -m benchmarks sweep / eval / report / perf
# --------------------------------------------------------------------------- #


def _sweep(command: str) -> str:
    return f"python -m benchmarks {command}"


ARM = "  - {architecture: topk, sparsity_param: k, sparsity_values: [8]}\n"


@pytest.mark.parametrize(
    "yaml_text,words",
    [
        (
            "name: x\narchitectures:\n  - {architecture: topk, sparsity_param: k, "
            "sparsity_values: [8], lrr: 1.0e-3}\n",
            ["architectures[0]", "lrr"],
        ),
        ("name: x\narchitecture:\n" + ARM, ["architecture", "architectures"]),
        ("name: x\nseeds: 3\narchitectures:\n" + ARM, ["seeds", "list of integers"]),
        ("name: x\nlr: 1e-3\narchitectures:\n" + ARM, ["lr", "1.0e-4"]),
        (
            "name: x\neval: {probing_size: huge}\narchitectures:\n" + ARM,
            ["probing_size"],
        ),
        ("name: x\narchitectures: [ {architecture: topk\n", ["not valid YAML"]),
        (
            "name: x\narchitectures:\n  - {architecture: topk, sparsity_param: k, "
            "sparsity_values: [4096]}\n",
            ["sparsity_values", "d_sae"],
        ),
    ],
    ids=[
        "unknown-arm-field",
        "unknown-field",
        "seeds-type",
        "yaml-float",
        "eval",
        "yaml",
        "k",
    ],
)
def test_sweep_reports_a_bad_preset_before_touching_the_folder(
    tmp_path, yaml_text, words, capsys
):
    preset = tmp_path / "preset.yaml"
    preset.write_text(yaml_text)
    out = tmp_path / "out"
    argv = ["sweep", "--preset", str(preset), "--out", str(out)]
    assert_input_error(benchmarks_main, argv, capsys, _sweep("sweep"), *words)
    assert not out.exists()


@pytest.mark.parametrize(
    "flags,words",
    [
        (["--preset", "no_such_preset"], ["--preset", "no_such_preset", "cpu"]),
        (["--preset", "ci", "--bases", "nosuch"], ["--bases", "nosuch"]),
        (["--preset", "ci", "--workers", "0"], ["--workers"]),
    ],
    ids=["unknown-preset", "unknown-base", "workers"],
)
def test_sweep_reports_bad_options(tmp_path, flags, words, capsys):
    out = tmp_path / "out"
    argv = ["sweep", *flags, "--out", str(out)]
    assert_input_error(benchmarks_main, argv, capsys, _sweep("sweep"), *words)
    assert not out.exists()


def test_sweep_reports_an_out_that_is_a_file(tmp_path, capsys):
    out = tmp_path / "file"
    out.write_text("mine")
    argv = ["sweep", "--preset", "ci", "--out", str(out)]
    assert_input_error(benchmarks_main, argv, capsys, _sweep("sweep"), "--out")


def test_eval_reports_a_pickle_only_folder(pickle_only_dir, tmp_path, capsys):
    argv = ["eval", str(pickle_only_dir), "--out", str(tmp_path / "out")]
    assert_input_error(
        benchmarks_main, argv, capsys, _sweep("eval"), str(pickle_only_dir), "cfg.json"
    )


def test_eval_reports_a_missing_folder_and_bad_options(sae_dir, tmp_path, capsys):
    missing = str(tmp_path / "nope")
    argv = ["eval", missing, "--out", str(tmp_path / "out")]
    assert_input_error(benchmarks_main, argv, capsys, _sweep("eval"), missing)
    argv = ["eval", str(sae_dir), "--batch-size-prompts", "0"]
    assert_input_error(
        benchmarks_main, argv, capsys, _sweep("eval"), "--batch-size-prompts"
    )


def test_report_reports_a_folder_without_records(tmp_path, capsys):
    argv = ["report", str(tmp_path / "nope")]
    assert_input_error(benchmarks_main, argv, capsys, _sweep("report"), "records")


@pytest.mark.parametrize(
    "flags,words",
    [
        (["--architectures", "topk"], ["--architectures", "aligned_topk"]),
        (["--alignment", "sideways"], ["--alignment", "tied"]),
        (["--steps", "0"], ["--steps"]),
        (["--threads", "-2"], ["--threads"]),
        (["--sweep-only"], ["--sweep-only", "--sweep-k"]),
    ],
    ids=["not-aligned", "form", "steps", "threads", "sweep-only"],
)
def test_perf_reports_bad_options(flags, words, capsys):
    argv = ["perf", "--tiny", *flags]
    assert_input_error(benchmarks_main, argv, capsys, _sweep("perf"), *words)


# --------------------------------------------------------------------------- #
# As a person runs them: a fresh process, nothing but one line on stderr
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    "argv,prog",
    [
        (
            [sys.executable, "-m", "saelens_aligned", "train", "--architecture", "topk"]
            + ["--k", "100", "--d_sae", "64"],
            TRAIN,
        ),
        (
            [sys.executable, "-m", "benchmarks", "sweep", "--preset", "no_such"]
            + ["--out", "unused"],
            _sweep("sweep"),
        ),
    ],
    ids=["train", "sweep"],
)
def test_a_fresh_process_prints_one_line_and_exits_2(argv, prog, tmp_path):
    done = subprocess.run(
        argv,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), done.stderr
