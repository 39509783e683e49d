"""Every notebook in notebooks/ runs top to bottom, offline, at tiny parameters;
the committed copies carry the outputs of a complete run; and the helpers the
notebooks call behave.

Tiny values are injected papermill-style: a cell tagged `injected-parameters`
goes right after the first code cell (tagged `parameters`) and overrides only
the names that cell assigns, so a new notebook that uses the same parameter names
runs small with no change here. The kernel starts in the notebook's own folder,
as Jupyter does; the folders a notebook writes to are redirected to tmp_path, and
so are the executed copies: nothing is written next to the committed notebooks.

To refresh a committed notebook's stored outputs (its own default parameters; its
output folders, e.g. notebooks/quickstart-output/, are left next to it):

    python -m tests.test_notebooks notebooks/01_quickstart.ipynb
"""

import ast
import os
import sys
import time
from pathlib import Path
from typing import Any

import matplotlib
import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

from saelens_aligned.apps.plotting import plot_alignment_vs_density
from saelens_aligned.diagnostics import relate_alignment_to_density

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))
NOTEBOOK_CASES = [pytest.param(path, id=path.name) for path in NOTEBOOKS]
PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"
# Tiny values for the parameter names the notebooks use (a real model and corpus,
# a few thousand tokens): each notebook runs in well under two minutes.
TINY_PARAMETERS: dict[str, Any] = {
    "TRAINING_TOKENS": 4096,
    "D_SAE": 128,
    "K": 8,
    "CONTEXT_SIZE": 64,
    "TRAIN_BATCH_SIZE_TOKENS": 256,
    "MODEL_BATCH_SIZE": 8,
    "EVAL_BATCH_SIZE_PROMPTS": 2,
    "EVAL_RECONSTRUCTION_BATCHES": 1,
    "EVAL_SPARSITY_VARIANCE_BATCHES": 2,
    "DASHBOARD_FEATURES": 2,
    "DASHBOARD_TOKENS": 256,
}
# Folders a notebook writes to; they go under tmp_path.
OUTPUT_PARAMETERS = ("OUTPUT_DIR", "ACTIVATIONS_DIR")
CELL_TIMEOUT_S = 600


def parameters_cell_index(nb: nbformat.NotebookNode) -> int:
    """The index of the notebook's first code cell, which holds its parameters."""
    return next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")


def parameter_names(nb: nbformat.NotebookNode) -> list[str]:
    """The names the notebook's parameters cell assigns."""
    tree = ast.parse(nb.cells[parameters_cell_index(nb)].source)
    names = []
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        names += [t.id for t in targets if isinstance(t, ast.Name)]
    return names


def inject_parameters(
    nb: nbformat.NotebookNode, values: dict[str, Any]
) -> nbformat.NotebookNode:
    """A copy of `nb` with a cell after its parameters cell that sets `values`
    (only those the parameters cell assigns)."""
    nb = nbformat.from_dict(nb)
    known = set(parameter_names(nb))
    lines = [f"{name} = {value!r}" for name, value in values.items() if name in known]
    cell = nbformat.v4.new_code_cell("\n".join(["# Injected by the test", *lines]))
    cell.metadata["tags"] = [INJECTED_TAG]
    nb.cells.insert(parameters_cell_index(nb) + 1, cell)
    return nb


def kernel_env() -> dict[str, str]:
    """The notebook kernel's environment: offline, the repo importable, no
    progress bars."""
    pythonpath = os.pathsep.join(
        p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
    )
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "WANDB_MODE": "offline",
        "PYTHONPATH": pythonpath,
        "TQDM_DISABLE": "1",
    }


def execute_notebook(
    nb: nbformat.NotebookNode, workdir: Path, env: dict[str, str] | None = None
) -> nbformat.NotebookNode:
    """Run every cell of `nb` (in place) in a fresh python3 kernel of this
    interpreter, with `workdir` as its working directory; raises
    nbclient's CellExecutionError on the first failing cell."""
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        record_timing=False,
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute(env=env if env is not None else kernel_env())
    return nb


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOK_CASES)
def test_notebook_runs_top_to_bottom_offline_at_tiny_parameters(
    path: Path, tmp_path: Path
) -> None:
    committed = path.read_bytes()
    values = {
        **TINY_PARAMETERS,
        **{name: str(tmp_path / name.lower()) for name in OUTPUT_PARAMETERS},
    }
    nb = inject_parameters(nbformat.reads(committed, as_version=4), values)
    beside = sorted(path.parent.iterdir())
    start = time.monotonic()
    try:
        execute_notebook(nb, path.parent)
    finally:
        nbformat.write(nb, tmp_path / path.name)
        print(f"{path.name}: {time.monotonic() - start:.0f} s")
    assert path.read_bytes() == committed
    assert sorted(path.parent.iterdir()) == beside, "it wrote next to the notebook"
    errors = [
        out
        for cell in nb.cells
        for out in cell.get("outputs", [])
        if out.output_type == "error"
    ]
    assert not errors


@pytest.mark.parametrize("path", NOTEBOOK_CASES)
def test_first_code_cell_is_the_tagged_parameters_cell(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    first = nb.cells[parameters_cell_index(nb)]
    assert PARAMETERS_TAG in first.metadata.get("tags", [])
    assert parameter_names(nb), "the parameters cell assigns no names"


@pytest.mark.parametrize("path", NOTEBOOK_CASES)
def test_committed_notebook_holds_the_outputs_of_one_complete_run(
    path: Path,
) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    assert not any(INJECTED_TAG in c.metadata.get("tags", []) for c in nb.cells)
    outputs = [out for cell in code for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    assert any("image/png" in out.get("data", {}) for out in outputs)
    assert path.stat().st_size < 2_000_000


# --------------------------------------------------------------------------- #
# The helpers the notebooks call
# --------------------------------------------------------------------------- #


def test_alignment_density_relation_finds_dead_low_alignment_features() -> None:
    scores = np.array([0.0, 0.1, 0.2, 0.6, 0.7, 0.95, 1.0, 1.05])
    density = np.array([0.0, 0.0, 5e-5, 1e-3, 2e-3, 1e-2, 3e-2, 5e-2])
    relation = relate_alignment_to_density(scores, density)
    low, mid, high = relation.bands
    assert (low.n_features, mid.n_features, high.n_features) == (3, 2, 3)
    assert low.frac_dead == pytest.approx(2 / 3)
    assert low.frac_rare == pytest.approx(1 / 3)  # fired, but below 1e-4
    assert mid.frac_dead == high.frac_dead == 0.0
    assert high.median_density == pytest.approx(3e-2)
    assert 0.99 < relation.spearman < 1.0  # monotone, but the two dead ones tie
    assert relation.spearman_alive == pytest.approx(1.0)
    rows = relation.rows()
    assert [r["alignment band"] for r in rows] == [
        "a < 0.5",
        "0.5 <= a < 0.9",
        "a >= 0.9",
    ]


def test_alignment_density_relation_handles_empty_bands_and_constant_input() -> None:
    relation = relate_alignment_to_density([1.0] * 4, [0.1, 0.2, 0.3, 0.4])
    assert relation.spearman is None and relation.spearman_alive is None
    assert relation.bands[0].n_features == 0
    assert np.isnan(relation.bands[0].frac_dead)
    assert relation.bands[2].n_features == 4
    with pytest.raises(ValueError, match="one value per feature"):
        relate_alignment_to_density([1.0, 0.5], [0.1])


def test_alignment_vs_density_plot_draws_one_panel_per_sae_and_saves_a_png(
    tmp_path: Path,
) -> None:
    matplotlib.use("Agg")
    rng = np.random.default_rng(0)
    scores = {"a": rng.uniform(0, 1, 50), "b": rng.uniform(0, 1, 50)}
    densities = {"a": np.r_[np.zeros(10), rng.uniform(0, 1, 40)], "b": np.ones(50)}
    fig = plot_alignment_vs_density(scores, densities, path=tmp_path / "p.png")
    assert len(fig.axes) == 2
    assert "40 live of 50" in fig.axes[0].get_title()
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def _refresh_stored_outputs(paths: list[str]) -> None:
    """Re-run each notebook at its default parameters and store its outputs."""
    for name in paths:
        path = Path(name).resolve()
        nb = nbformat.read(path, as_version=4)
        start = time.monotonic()
        execute_notebook(nb, path.parent)
        print(f"{path.name}: {time.monotonic() - start:.0f} s")
        nbformat.write(nb, path)


if __name__ == "__main__":
    _refresh_stored_outputs(sys.argv[1:])
