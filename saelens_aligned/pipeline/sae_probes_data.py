"""Smaller copies of sae-probes' labelled datasets, for CPU-sized runs.

sae-probes reads every prompt of a dataset (up to 5,000) in one model pass each;
`write_subsamples` writes class-balanced subsamples in sae-probes' own layout, and
`read_dataset` is the reader `sae_probes_eval` hands sae-probes for the call.
"""

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SUBSAMPLE_SEED = 0
"""Seeds the choice of rows in a subsample. Fixed, not `random_seed`, so that model
activations are shared by evaluations that differ only in seed (which then varies
sae-probes' own train/test split)."""


def balanced_subsample(frame: pd.DataFrame, size: int, seed: int) -> pd.DataFrame:
    """`size` rows of `frame` (fewer if a class has under `size / 2`), half of each
    of its two `target` classes, drawn with `seed`, in their original order."""
    classes = sorted(frame["target"].unique(), key=str)
    if len(classes) != 2:
        raise ValueError(f"Expected two target classes, found {len(classes)}.")
    groups = [np.flatnonzero(frame["target"].to_numpy() == c) for c in classes]
    per_class = min(size // 2, *(len(group) for group in groups))
    rng = np.random.default_rng(seed)
    chosen = np.concatenate(
        [rng.choice(group, per_class, replace=False) for group in groups]
    )
    return frame.iloc[np.sort(chosen)].reset_index(drop=True)


def write_subsamples(
    datasets: tuple[str, ...], size: int, data_root: Path
) -> dict[str, int]:
    """Subsampled copies of `datasets` under `data_root/cleaned_data` (sae-probes'
    layout), written once; their sizes."""
    from sae_probes.constants import DATA_PATH

    sizes = {}
    for dataset in datasets:
        path = data_root / "cleaned_data" / f"{dataset}.csv.zst"
        if not path.exists():
            frame = pd.read_csv(DATA_PATH / "cleaned_data" / path.name)
            path.parent.mkdir(parents=True, exist_ok=True)
            partial_path = path.with_name(f"{path.name}.partial")
            sample = balanced_subsample(frame, size, SUBSAMPLE_SEED)
            sample.to_csv(partial_path, index=False, compression="zstd")
            partial_path.replace(path)
        sizes[dataset] = len(pd.read_csv(path))
    return sizes


def read_dataset(
    data_root: Path, original: Any, numbered_dataset_tag: str
) -> pd.DataFrame:
    """`numbered_dataset_tag`'s subsample under `data_root`, else `original`
    (sae-probes' own reader)."""
    path = data_root / "cleaned_data" / f"{numbered_dataset_tag}.csv.zst"
    return pd.read_csv(path) if path.exists() else original(numbered_dataset_tag)
