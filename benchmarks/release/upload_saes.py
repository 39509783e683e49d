"""Publish a benchmark run's SAEs in the layout of SAELens releases.

Every SAE directory under `run_dir` (cfg.json + sae_weights.safetensors) becomes
one sae_id, its path relative to `run_dir`. The script can

- `--stage DIR`: copy them into a local folder in the HF layout (one subfolder per
  sae_id), which `saelens_aligned.load_sae(DIR, sae_id)` reads; a dry run of
  the upload;
- `--repo-id OWNER/NAME`: upload them with SAELens' own
  `upload_saes_to_huggingface` (same files, same layout, default README);
- `--release NAME --registry PATH`: add the release to a registry in the format
  of SAELens' pretrained_saes.yaml (default: the packaged one), so that
  `SAE.from_pretrained(NAME, sae_id)` resolves it once saelens_aligned is imported.

L0 and explained variance go into the registry entry when the SAE directory holds
a `metrics.json` with `l0` and `explained_variance`.

    python -m benchmarks.release.upload_saes runs/sweep --aligned-only --repo-id me/aligned-saes \\
        --release smollm2-135m-aligned-topk --model SmolLM2-135M-Instruct
"""

import argparse
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml
from sae_lens.constants import (
    RUNNER_CFG_FILENAME,
    SAE_CFG_FILENAME,
    SAE_WEIGHTS_FILENAME,
    SPARSITY_FILENAME,
)

from saelens_aligned.io.files import replace_dir, write_text_atomic
from saelens_aligned.io.pretrained import (
    ReleaseSAE,
    check_safetensors,
    default_registry_path,
    parse_release_registry,
    release_entry,
    sae_ids_in_folder,
)

# What SAELens' upload helper publishes of each SAE directory.
PUBLISHED_FILES = (
    SAE_CFG_FILENAME,
    SAE_WEIGHTS_FILENAME,
    SPARSITY_FILENAME,
    RUNNER_CFG_FILENAME,
)
METRICS_FILENAME = "metrics.json"


def find_sae_dirs(run_dir: str | Path, aligned_only: bool = False) -> dict[str, Path]:
    """sae_id -> directory for every SAE under `run_dir`; weights checked to be
    safetensors. With `aligned_only`, only SAEs whose metadata names an aligned
    training architecture."""
    from saelens_aligned.architectures import aligned_architectures

    root = Path(run_dir)
    aligned = set(aligned_architectures())
    found: dict[str, Path] = {}
    ids = sae_ids_in_folder(root) or (
        [""] if (root / SAE_CFG_FILENAME).exists() else []
    )
    for sae_id in ids:
        path = root / sae_id
        if not (path / SAE_WEIGHTS_FILENAME).exists():
            continue
        check_safetensors(path / SAE_WEIGHTS_FILENAME)
        if aligned_only:
            cfg = json.loads((path / SAE_CFG_FILENAME).read_text())
            training = (cfg.get("metadata") or {}).get("training_architecture")
            if training not in aligned and cfg.get("architecture") not in aligned:
                continue
        found[sae_id or path.name] = path
    if not found:
        raise FileNotFoundError(
            f"No SAE directory with safetensors weights under {root}."
        )
    return found


def stage_release(saes: dict[str, Path], out_dir: str | Path) -> Path:
    """Copy the SAEs into `out_dir` in the HF layout; written whole, then renamed."""
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for sae_id, src in saes.items():
            dst = tmp / sae_id
            dst.mkdir(parents=True)
            for name in PUBLISHED_FILES:
                if (src / name).exists():
                    shutil.copy2(src / name, dst / name)
        replace_dir(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def release_saes(saes: dict[str, Path]) -> list[ReleaseSAE]:
    entries = []
    for sae_id, path in saes.items():
        metrics: dict[str, Any] = {}
        if (path / METRICS_FILENAME).exists():
            metrics = json.loads((path / METRICS_FILENAME).read_text())
        entries.append(
            ReleaseSAE(
                id=sae_id,
                path=sae_id,
                l0=metrics.get("l0"),
                variance_explained=metrics.get("explained_variance"),
            )
        )
    return entries


def add_release_to_registry(
    registry: str | Path, release: str, entry: dict[str, Any]
) -> Path:
    """Add or replace `release` in a pretrained_saes.yaml-format file, atomically."""
    path = Path(registry)
    header = ""
    data: dict[str, Any] = {}
    if path.exists():
        text = path.read_text()
        header = "".join(
            line + "\n" for line in text.splitlines() if line.startswith("#")
        )
        data = yaml.safe_load(text) or {}
    data[release] = entry
    parse_release_registry(data)  # refuse to write what the loader cannot read
    return write_text_atomic(path, header + yaml.safe_dump(data, sort_keys=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--aligned-only", action="store_true")
    parser.add_argument(
        "--stage", default=None, help="Local HF-layout folder to write."
    )
    parser.add_argument("--repo-id", default=None, help="Upload to this HF repo.")
    parser.add_argument("--revision", default="main")
    parser.add_argument("--release", default=None, help="Release name to register.")
    parser.add_argument("--model", default="SmolLM2-135M-Instruct")
    parser.add_argument("--registry", default=str(default_registry_path()))
    args = parser.parse_args()

    saes = find_sae_dirs(args.run_dir, aligned_only=args.aligned_only)
    print(f"{len(saes)} SAEs: {sorted(saes)}")
    if args.stage:
        print(f"Staged in {stage_release(saes, args.stage)}")
    if args.repo_id:
        from sae_lens.training.upload_saes_to_huggingface import (
            upload_saes_to_huggingface,
        )

        upload_saes_to_huggingface(
            {sae_id: path for sae_id, path in saes.items()},
            hf_repo_id=args.repo_id,
            hf_revision=args.revision,
        )
        print(f"Uploaded to https://huggingface.co/{args.repo_id}")
    if args.release:
        if not args.repo_id:
            parser.error("--release needs --repo-id (the repo the release points at).")
        entry = release_entry(args.repo_id, args.model, release_saes(saes))
        print(
            f"Registered {args.release} in {add_release_to_registry(args.registry, args.release, entry)}"
        )


if __name__ == "__main__":
    main()
