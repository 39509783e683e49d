"""Damaged SAE files fail clearly, weights are never unpickled, datasets never run
remote code unasked, and every write is atomic."""

import json
import os
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from sae_lens import TrainingSAE
from sae_lens.constants import SAE_CFG_FILENAME, SAE_WEIGHTS_FILENAME

from saelens_aligned.apps.align import save_inference_sae_atomic
from saelens_aligned.apps.plotting import plot_alignment_histograms
from saelens_aligned.cli.train import parse_runner_config
from saelens_aligned.io import (
    CorruptSAEError,
    CorruptWeightsError,
    atomic_dir,
    load_sae_dir,
    save_figure_atomic,
    write_json_atomic,
    write_text_atomic,
)
from saelens_aligned.io.pretrained import load_sae
from saelens_aligned.pipeline.corpora import write_jsonl_atomic
from tests.conftest import make_sae

REPO = Path(__file__).resolve().parents[1]
RECOVERY = "Re-download it"


@pytest.fixture(scope="module")
def saved_sae(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real SAELens training checkpoint of an aligned SAE (cfg.json + weights)."""
    path = tmp_path_factory.mktemp("saved") / "sae"
    make_sae("aligned_topk", "tied", d_in=16, d_sae=32).save_model(path)
    return path


def truncate_to_half(data: bytes) -> bytes:
    return data[: len(data) // 2]


def garbage(data: bytes) -> bytes:
    # Deterministic bytes that are neither safetensors nor a pickle or zip.
    return (b"not a safetensors file \x00\xff" * len(data))[: len(data)]


def empty(data: bytes) -> bytes:  # noqa: ARG001
    return b""


def one_byte_short(data: bytes) -> bytes:
    return data[:-1]


DAMAGE = [truncate_to_half, garbage, empty, one_byte_short]
LOADERS: dict[str, Callable[[Path], Any]] = {
    "load_sae_dir": lambda p: load_sae_dir(p),
    "load_sae_dir(TrainingSAE)": lambda p: load_sae_dir(p, sae_class=TrainingSAE),
    "pretrained.load_sae(dir)": lambda p: load_sae(p),
    "pretrained.load_sae(weights file)": lambda p: load_sae(p / SAE_WEIGHTS_FILENAME),
}


def damaged_copy(saved: Path, where: Path, damage: Callable[[bytes], bytes]) -> Path:
    copy = where / "damaged"
    shutil.copytree(saved, copy)
    weights = copy / SAE_WEIGHTS_FILENAME
    weights.write_bytes(damage(weights.read_bytes()))
    return copy


@pytest.mark.parametrize("loader", list(LOADERS))
@pytest.mark.parametrize("damage", DAMAGE, ids=lambda f: f.__name__)
def test_a_damaged_weights_file_is_named_in_the_error_with_what_to_do(
    saved_sae, tmp_path, damage, loader
):
    path = damaged_copy(saved_sae, tmp_path, damage)
    with pytest.raises(CorruptWeightsError) as caught:
        LOADERS[loader](path)
    message = str(caught.value)
    assert str(path / SAE_WEIGHTS_FILENAME) in message
    assert "corrupted or truncated" in message
    assert RECOVERY in message and "retrain" in message


def test_the_undamaged_sae_loads_through_every_loader(saved_sae):
    reference = TrainingSAE.load_from_disk(saved_sae)
    for name, loader in LOADERS.items():
        sae = loader(saved_sae)
        sae = sae.sae if hasattr(sae, "sae") else sae
        torch.testing.assert_close(sae.W_dec, reference.W_dec, msg=name)
    assert isinstance(load_sae_dir(saved_sae, sae_class=TrainingSAE), TrainingSAE)


def test_a_missing_or_broken_cfg_json_is_named_in_the_error(saved_sae, tmp_path):
    no_cfg = tmp_path / "no_cfg"
    shutil.copytree(saved_sae, no_cfg)
    (no_cfg / SAE_CFG_FILENAME).unlink()
    for loader in (load_sae_dir, load_sae):
        with pytest.raises(
            FileNotFoundError, match=re.escape(f"{no_cfg} is not a SAE")
        ):
            loader(no_cfg)

    broken = tmp_path / "broken_cfg"
    shutil.copytree(saved_sae, broken)
    (broken / SAE_CFG_FILENAME).write_text('{"architecture": "topk", ')
    with pytest.raises(CorruptSAEError, match=re.escape(str(broken / "cfg.json"))):
        load_sae_dir(broken)
    with pytest.raises(CorruptSAEError, match=RECOVERY):
        load_sae(broken)

    no_weights = tmp_path / "no_weights"
    shutil.copytree(saved_sae, no_weights)
    (no_weights / SAE_WEIGHTS_FILENAME).unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(f"{no_weights} has cfg")):
        load_sae_dir(no_weights)

    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "absent"))):
        load_sae_dir(tmp_path / "absent")


# ---------------------------------------------------------------------------
# No pickle


def unsafe_loads(source: str) -> list[str]:
    """Lines that unpickle: `import pickle`, or torch.load without weights_only=True.
    A torch.load call is read up to its closing parenthesis."""
    found = []
    for match in re.finditer(r"^\s*(import|from)\s+(c?pickle|dill)\b", source, re.M):
        found.append(match.group(0).strip())
    for match in re.finditer(r"torch\.load\(", source):
        depth, end = 1, match.end()
        while depth and end < len(source):
            depth += {"(": 1, ")": -1}.get(source[end], 0)
            end += 1
        call = source[match.start() : end]
        if not re.search(r"weights_only\s*=\s*True", call):
            found.append(call)
    return found


def test_the_unpickling_scan_finds_what_it_looks_for():
    assert unsafe_loads("import pickle\nx = torch.load(f, map_location='cpu')\n") == [
        "import pickle",
        "torch.load(f, map_location='cpu')",
    ]
    assert unsafe_loads("torch.load(\n    open(p), weights_only=True\n)") == []


def test_no_source_file_unpickles_weights():
    files = sorted(
        p
        for folder in ("saelens_aligned", "benchmarks")
        for p in (REPO / folder).rglob("*.py")
    )
    assert len(files) > 10
    offenders = {
        str(p.relative_to(REPO)): unsafe_loads(p.read_text(encoding="utf-8"))
        for p in files
    }
    assert {k: v for k, v in offenders.items() if v} == {}


# ---------------------------------------------------------------------------
# No remote dataset code unless asked


TRAIN_ARGS = [
    "--model_name", "gpt2",
    "--hook_name", "blocks.0.hook_resid_post",
    "--dataset_path", "some-org/some-dataset",
    "--architecture", "aligned_topk",
    "--d_in", "768",
    "--k", "8",
    "--train_batch_size_tokens", "1024",
]  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ([], False),
        (["--dataset_trust_remote_code", "true"], True),
        (["--dataset_trust_remote_code=True"], True),
        (["--dataset_trust_remote_code"], True),
        (["--dataset_trust", "true"], True),  # argparse's abbreviation
        (["--dataset_trust_remote_code", "false"], False),
    ],
)
def test_the_train_cli_runs_no_dataset_code_unless_asked(extra, expected):
    cfg = parse_runner_config([*TRAIN_ARGS, *extra])
    assert cfg.dataset_trust_remote_code is expected
    assert cfg.sae.architecture() == "aligned_topk"
    assert cfg.dataset_path == "some-org/some-dataset"


DATASET_SCRIPT = """
from pathlib import Path

import datasets

Path({marker!r}).write_text("the dataset's own code ran")


class Scripted(datasets.GeneratorBasedBuilder):
    def _info(self):
        return datasets.DatasetInfo(
            features=datasets.Features({{"text": datasets.Value("string")}})
        )

    def _split_generators(self, dl_manager):
        return [datasets.SplitGenerator(name=datasets.Split.TRAIN)]

    def _generate_examples(self):
        yield 0, {{"text": "hello"}}
"""


def test_a_dataset_with_a_loading_script_is_refused_by_default(tmp_path, monkeypatch):
    """Through SAELens' own ActivationsStore, as training would load it."""
    import datasets
    from sae_lens.training.activations_store import ActivationsStore

    monkeypatch.setattr(datasets.config, "HF_MODULES_CACHE", tmp_path / "modules")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")
    monkeypatch.setattr(sys, "path", list(sys.path))
    marker = tmp_path / "script_ran"
    dataset = tmp_path / "scripted"
    dataset.mkdir()
    (dataset / "scripted.py").write_text(DATASET_SCRIPT.format(marker=str(marker)))
    args = [str(dataset) if a == "some-org/some-dataset" else a for a in TRAIN_ARGS]
    cfg = parse_runner_config(
        [*args, "--streaming", "False", "--is_dataset_tokenized", "False"]
    )
    with pytest.raises(ValueError, match="trust_remote_code=True"):
        ActivationsStore.from_config(None, cfg)  # type: ignore[arg-type]
    assert not marker.exists()


# ---------------------------------------------------------------------------
# Atomic writes


class Unserialisable:
    pass


def only_file(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_json_write_that_fails_halfway_leaves_the_old_file(tmp_path):
    path = tmp_path / "report.json"
    write_json_atomic(path, {"version": 1})
    # json.dump has streamed "{"a": [0, 1, ... into the temporary file by the time
    # it reaches the object it cannot serialise.
    with pytest.raises(TypeError, match="not JSON serializable"):
        write_json_atomic(path, {"a": list(range(10_000)), "b": Unserialisable()})
    assert json.loads(path.read_text()) == {"version": 1}
    assert only_file(tmp_path) == ["report.json"]

    fresh = tmp_path / "new" / "report.json"
    with pytest.raises(TypeError):
        write_json_atomic(fresh, [1, 2, Unserialisable()])
    assert not fresh.exists()
    assert only_file(fresh.parent) == []


WRITERS: dict[str, Callable[[Path], Any]] = {
    "summary.md": lambda p: write_text_atomic(p, "new\n"),
    "metrics.json": lambda p: write_json_atomic(p, {"new": 1}),
    "train.jsonl": lambda p: write_jsonl_atomic(p, ["new"]),
    "plot.png": lambda p: save_figure_atomic(
        plot_alignment_histograms({"x": torch.ones(4)}), p
    ),
}


@pytest.mark.parametrize("name", list(WRITERS))
def test_a_write_interrupted_before_the_rename_leaves_the_old_file(
    tmp_path, monkeypatch, name
):
    path = tmp_path / name
    path.write_text("old\n")

    def crash(*_: Any) -> None:
        raise OSError("disk gone")

    with monkeypatch.context() as m:
        m.setattr(os, "replace", crash)
        with pytest.raises(OSError, match="disk gone"):
            WRITERS[name](path)
    assert path.read_text() == "old\n"
    assert only_file(tmp_path) == [name]
    # Without the crash the same write replaces the file.
    WRITERS[name](path)
    assert path.read_bytes() != b"old\n"
    assert only_file(tmp_path) == [name]


def test_plots_are_written_atomically_in_the_format_of_their_name(tmp_path):
    path = tmp_path / "plots" / "scores.png"
    plot_alignment_histograms({"x": torch.ones(4)}, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert only_file(path.parent) == ["scores.png"]
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~current_umask())


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_an_sae_directory_is_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    old = make_sae("topk", d_in=16, d_sae=32, seed=0)
    new = make_sae("aligned_topk", "tied", d_in=16, d_sae=32, seed=1)
    path = tmp_path / "sae"
    save_inference_sae_atomic(old, path)
    before = load_sae_dir(path).W_dec.detach().clone()

    def crash_after_weights(self: Any, path: Any, *args: Any, **kwargs: Any) -> Any:
        original(self, path, *args, **kwargs)
        (Path(path) / SAE_CFG_FILENAME).write_text("{")  # a half-written cfg.json
        raise KeyboardInterrupt

    original = type(new).save_inference_model
    with monkeypatch.context() as m:
        m.setattr(type(new), "save_inference_model", crash_after_weights)
        with pytest.raises(KeyboardInterrupt):
            save_inference_sae_atomic(new, path)
    torch.testing.assert_close(load_sae_dir(path).W_dec, before)
    assert only_file(tmp_path) == ["sae"]

    save_inference_sae_atomic(new, path)
    assert not torch.allclose(load_sae_dir(path).W_dec, before)
    assert only_file(tmp_path) == ["sae"]
    assert only_file(path) == [SAE_CFG_FILENAME, SAE_WEIGHTS_FILENAME]


def test_a_directory_swap_that_fails_at_the_rename_keeps_the_old_directory(
    tmp_path, monkeypatch
):
    path = tmp_path / "sae"
    save_inference_sae_atomic(make_sae("topk", d_in=16, d_sae=32, seed=0), path)
    before = load_sae_dir(path).W_dec.detach().clone()
    real_replace = os.replace

    def fail_moving_the_new_dir_in(src: Any, dst: Any) -> None:
        if Path(dst) == path and Path(src).name.endswith(".tmp"):
            raise OSError("disk gone")
        real_replace(src, dst)

    with monkeypatch.context() as m:
        m.setattr(os, "replace", fail_moving_the_new_dir_in)
        with pytest.raises(OSError, match="disk gone"):
            save_inference_sae_atomic(make_sae("topk", d_in=16, d_sae=32), path)
    torch.testing.assert_close(load_sae_dir(path).W_dec, before)
    assert only_file(tmp_path) == ["sae"]


def test_an_atomic_dir_that_fails_leaves_no_directory(tmp_path):
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "out") as tmp:
        (tmp / "part").write_text("half")
        raise RuntimeError
    assert only_file(tmp_path) == []
