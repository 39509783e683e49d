"""Load SAEs from anywhere, aligned or not, and the registry of aligned releases.

`load_sae(source, sae_id)` accepts
- a local SAELens SAE directory (cfg.json + sae_weights.safetensors);
- a local folder in the Hugging Face layout of SAELens releases: one subfolder per
  sae_id, each a SAELens SAE directory (what `upload_saes_to_huggingface` writes);
- a release name from our registry (`pretrained_saes.yaml`, SAELens' format),
  including releases shipped inside this package as compact files
  (`io/compact.py`, conversion `saelens_aligned_packaged`), which are expanded
  once into an ordinary SAELens folder in the cache and need no hub;
- a Hugging Face repo id in that layout, downloaded when online or read from the
  local HF cache when `HF_HUB_OFFLINE=1`.

Weights are only ever read with safetensors: a pickle-based file (`.pt`, `.pth`,
`.bin`, `.pkl`, `.ckpt`) can run arbitrary code when loaded, so it is refused with
a message that says how to convert it.
"""

import contextlib
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from sae_lens.constants import SAE_CFG_FILENAME, SAE_WEIGHTS_FILENAME, SPARSITY_FILENAME
from sae_lens.loading.pretrained_saes_directory import (
    PretrainedSAELookup,
    get_pretrained_saes_directory,
)
from sae_lens.saes.sae import SAE

from saelens_aligned.alignment import AlignmentSummary
from saelens_aligned.io.sae_dirs import (
    NotSafetensorsError,
    check_sae_dir,
    check_safetensors,
    load_sae_dir,
    not_safetensors_error,
)

REGISTRY_FILENAME = "pretrained_saes.yaml"
# The conversion name of releases shipped in the package (`releases/`), which
# SAELens' `from_pretrained` dispatches to `packaged_loader`.
PACKAGED_LOADER = "saelens_aligned_packaged"
RELEASES_DIRNAME = "releases"


class PackagedReleaseMissingError(FileNotFoundError):
    """A packaged release's compact file is not in the installed package."""


class PretrainedSAE(NamedTuple):
    """What `load_sae` returns."""

    sae: SAE[Any]
    """The SAELens inference SAE (standard, topk, jumprelu or gated)."""
    alignment: AlignmentSummary
    """Distribution of its alignment scores a_i = <e_i, d_i>."""
    path: Path
    """The local SAE directory the weights were read from."""
    trained_aligned: bool
    """Whether its metadata says it was trained with an aligned architecture."""


# ---------------------------------------------------------------------------
# The release registry


def default_registry_path() -> Path:
    return Path(str(files("saelens_aligned").joinpath(REGISTRY_FILENAME)))


def parse_release_registry(
    data: dict[str, Any] | None,
) -> dict[str, PretrainedSAELookup]:
    """Releases from a mapping in the format of SAELens' `pretrained_saes.yaml`.

    The same fields and defaults as SAELens' own parser, which reads only its
    packaged file and so cannot be pointed at ours.
    """
    directory: dict[str, PretrainedSAELookup] = {}
    for release, value in (data or {}).items():
        if "saes" not in value:
            raise KeyError(f"Missing 'saes' key in release {release!r}.")
        for key in ("repo_id", "model"):
            if key not in value:
                raise KeyError(f"Missing {key!r} key in release {release!r}.")
        saes = value["saes"]
        directory[release] = PretrainedSAELookup(
            release=release,
            repo_id=value["repo_id"],
            model=value["model"],
            conversion_func=value.get("conversion_func"),
            saes_map={s["id"]: str(s["path"]) for s in saes},
            expected_var_explained={
                s["id"]: s.get("variance_explained", 1.0) for s in saes
            },
            expected_l0={s["id"]: s.get("l0", 0.0) for s in saes},
            neuronpedia_id={s["id"]: s.get("neuronpedia") for s in saes},  # type: ignore[misc]
            norm_scaling_factor={
                s["id"]: s["norm_scaling_factor"]
                for s in saes
                if "norm_scaling_factor" in s
            },
            config_overrides=value.get("config_overrides"),
        )
    return directory


def load_release_registry(
    path: str | Path | None = None,
) -> dict[str, PretrainedSAELookup]:
    """Our releases, read from `path` (default: the packaged pretrained_saes.yaml)."""
    with Path(path or default_registry_path()).open() as f:
        return parse_release_registry(yaml.safe_load(f))


@cache
def _packaged_releases() -> dict[str, PretrainedSAELookup]:
    return load_release_registry()


def packaged_release_file(release: str, folder: str) -> Path:
    """Where the compact file of a packaged release's SAE `folder` is installed."""
    root = Path(str(files("saelens_aligned").joinpath(RELEASES_DIRNAME)))
    return root / release / f"{folder}.safetensors"


def packaged_sae_dir(
    release: str, folder: str, cache_dir: str | Path | None = None
) -> Path:
    """The SAELens folder of a packaged release's SAE, expanded from its compact
    file into the cache on first use (and again whenever the file changes: its
    digest names the folder)."""
    import hashlib

    from saelens_aligned.io.cache import cache_root
    from saelens_aligned.io.compact import expand_compact

    compact = packaged_release_file(release, folder)
    if not compact.is_file():
        lookup = _find_release(release)
        hub = f" the hub repo {lookup.repo_id!r}" if lookup is not None else " the hub"
        raise PackagedReleaseMissingError(
            f"Release {release!r}, SAE {folder!r}, ships inside the saelens-aligned "
            f"package, but its file {compact} is missing. Reinstall the package "
            "(`pip install --force-reinstall saelens-aligned`, or `make install` in a "
            "checkout), rebuild the release (`python -m benchmarks.release build`), "
            f"or, with internet access, load it from{hub} once it is uploaded there."
        )
    digest = hashlib.sha256(compact.read_bytes()).hexdigest()[:12]
    out = cache_root(cache_dir) / RELEASES_DIRNAME / release / f"{folder}-{digest}"
    if not (out / SAE_WEIGHTS_FILENAME).is_file():
        expand_compact(compact, out)
    return out


def _release_of_repo(repo_id: str) -> str:
    # SAELens' loader interface passes the repo, not the release name.
    known = {**get_pretrained_saes_directory(), **_packaged_releases()}
    for name, lookup in known.items():
        if lookup.repo_id == repo_id and lookup.conversion_func == PACKAGED_LOADER:
            return name
    raise ValueError(f"No packaged saelens-aligned release has repo_id {repo_id!r}.")


def _packaged_or_hub_dir(
    release: str, folder: str, repo_id: str, force_download: bool = False
) -> Path:
    """The packaged SAE's folder; if its file is missing, the same folder from the
    hub (where `upload_saes` puts it) when the hub can be reached."""
    from huggingface_hub import constants

    try:
        return packaged_sae_dir(release, folder)
    except PackagedReleaseMissingError as missing:
        if constants.HF_HUB_OFFLINE:
            raise
        try:
            return _download_sae_dir(repo_id, folder, force_download)
        except Exception as hub_error:
            raise missing from hub_error


def packaged_loader(
    repo_id: str,
    folder_name: str,
    device: str = "cpu",
    force_download: bool = False,
    cfg_overrides: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any], None]:
    """SAELens' loader interface (`NAMED_PRETRAINED_SAE_LOADERS`) for packaged
    releases: SAELens' own disk loader on the expanded folder."""
    from sae_lens.loading.pretrained_sae_loaders import sae_lens_disk_loader

    sae_dir = _packaged_or_hub_dir(
        _release_of_repo(repo_id), folder_name, repo_id, force_download
    )
    cfg, state = sae_lens_disk_loader(sae_dir, device, cfg_overrides)
    return cfg, state, None


def packaged_config(
    repo_id: str,
    folder_name: str,
    device: str = "cpu",
    force_download: bool = False,
    cfg_overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """SAELens' config-getter interface (`NAMED_PRETRAINED_SAE_CONFIG_GETTERS`)."""
    import json

    sae_dir = _packaged_or_hub_dir(
        _release_of_repo(repo_id), folder_name, repo_id, force_download
    )
    cfg = json.loads((sae_dir / SAE_CFG_FILENAME).read_text())
    return {**cfg, "device": device, **(cfg_overrides or {})}


def register_pretrained_releases(path: str | Path | None = None) -> list[str]:
    """Make `SAE.from_pretrained(release, sae_id)` resolve our releases. Idempotent.

    SAELens has no public API for adding releases: its directory is the dict that
    the `@cache`d `get_pretrained_saes_directory()` returns, and every SAELens
    caller (`SAE.from_pretrained`, the loaders, `evals`) re-fetches that same dict.
    We add our entries to it. This relies on the cache keeping its dict (a
    `cache_clear()` drops our entries; call this again), which a test guards.
    A name SAELens already uses for another repo is an error, never shadowed.
    Returns the names registered.
    """
    from sae_lens.loading.pretrained_sae_loaders import (
        NAMED_PRETRAINED_SAE_CONFIG_GETTERS,
        NAMED_PRETRAINED_SAE_LOADERS,
    )

    # Registered even without releases, so a release added later resolves.
    NAMED_PRETRAINED_SAE_LOADERS[PACKAGED_LOADER] = packaged_loader
    NAMED_PRETRAINED_SAE_CONFIG_GETTERS[PACKAGED_LOADER] = packaged_config
    ours = load_release_registry(path) if path is not None else _packaged_releases()
    if not ours:
        return []
    directory = get_pretrained_saes_directory()
    for name, lookup in ours.items():
        existing = directory.get(name)
        if existing is not None and existing.repo_id != lookup.repo_id:
            raise ValueError(
                f"Release {name!r} is already in SAELens' directory (repo "
                f"{existing.repo_id!r}); rename ours ({lookup.repo_id!r})."
            )
        directory[name] = lookup
    return list(ours)


def _find_release(name: str) -> PretrainedSAELookup | None:
    return _packaged_releases().get(name) or get_pretrained_saes_directory().get(name)


def is_release(name: str) -> bool:
    """Whether `name` is a release in our registry or SAELens'."""
    return _find_release(name) is not None


# ---------------------------------------------------------------------------
# Resolving a source to a local SAE directory


def sae_ids_in_folder(root: str | Path) -> list[str]:
    """sae_ids of a folder in the HF layout: the relative paths of its SAE dirs."""
    root = Path(root)
    return sorted(
        str(cfg.parent.relative_to(root).as_posix())
        for cfg in root.rglob(SAE_CFG_FILENAME)
        if cfg.parent != root
    )


def _pick_sae_id(sae_ids: list[str], sae_id: str | None, where: str) -> str:
    if sae_id is not None:
        if sae_id not in sae_ids:
            raise ValueError(
                f"sae_id {sae_id!r} not found in {where}. Valid ids: {sae_ids}."
            )
        return sae_id
    if len(sae_ids) == 1:
        return sae_ids[0]
    if not sae_ids:
        raise FileNotFoundError(f"No SAE ({SAE_CFG_FILENAME}) found in {where}.")
    raise ValueError(f"{where} holds several SAEs; pass sae_id, one of {sae_ids}.")


def _download_sae_dir(repo_id: str, folder: str, force_download: bool = False) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import EntryNotFoundError, LocalEntryNotFoundError

    prefix = f"{folder.strip('/')}/" if folder.strip("/") else ""
    cfg_path = Path(
        hf_hub_download(
            repo_id, f"{prefix}{SAE_CFG_FILENAME}", force_download=force_download
        )
    )
    try:
        hf_hub_download(
            repo_id, f"{prefix}{SAE_WEIGHTS_FILENAME}", force_download=force_download
        )
    except EntryNotFoundError as e:
        raise NotSafetensorsError(
            f"{repo_id}/{prefix} has no {SAE_WEIGHTS_FILENAME}; saelens-aligned loads "
            "only safetensors weights, never pickle-based files."
        ) from e
    # Optional: absent from many releases, and from caches of those that have it.
    with contextlib.suppress(EntryNotFoundError, LocalEntryNotFoundError):
        hf_hub_download(
            repo_id, f"{prefix}{SPARSITY_FILENAME}", force_download=force_download
        )
    return cfg_path.parent


def _hub_sae_ids(repo_id: str) -> list[str]:
    from huggingface_hub import snapshot_download

    root = Path(snapshot_download(repo_id, allow_patterns=[f"*{SAE_CFG_FILENAME}"]))
    ids = sae_ids_in_folder(root)
    return [""] if (root / SAE_CFG_FILENAME).exists() and not ids else ids


def resolve_sae_dir(
    source: str | Path, sae_id: str | None = None, force_download: bool = False
) -> Path:
    """The local SAELens SAE directory that `source` (and `sae_id`) names."""
    path = Path(source).expanduser()
    if path.is_file():
        if path.name == SAE_WEIGHTS_FILENAME or path.suffix == ".safetensors":
            check_safetensors(path)
            return check_sae_dir(path.parent)
        raise not_safetensors_error(path, f"'{path.suffix}' is not a safetensors file")
    if path.is_dir():
        # Weights without cfg.json is a damaged SAE dir, not an HF-layout folder.
        if (path / SAE_CFG_FILENAME).exists() or (path / SAE_WEIGHTS_FILENAME).exists():
            return check_sae_dir(path)
        chosen = _pick_sae_id(sae_ids_in_folder(path), sae_id, str(path))
        return check_sae_dir(path / chosen)
    source = str(source)
    release = _find_release(source)
    if release is not None:
        chosen = _pick_sae_id(list(release.saes_map), sae_id, f"release {source!r}")
        if release.conversion_func == PACKAGED_LOADER:
            return check_sae_dir(
                _packaged_or_hub_dir(
                    source, release.saes_map[chosen], release.repo_id, force_download
                )
            )
        if (release.conversion_func or "sae_lens") != "sae_lens":
            raise ValueError(
                f"Release {source!r} uses conversion {release.conversion_func!r}; load it "
                "with SAE.from_pretrained, which knows that format."
            )
        return check_sae_dir(
            _download_sae_dir(release.repo_id, release.saes_map[chosen], force_download)
        )
    if source.count("/") == 1 and not source.startswith((".", "/", "~")):
        chosen = (
            sae_id
            if sae_id is not None
            else _pick_sae_id(_hub_sae_ids(source), None, f"HF repo {source!r}")
        )
        return check_sae_dir(_download_sae_dir(source, chosen, force_download))
    raise FileNotFoundError(
        f"{source!r} is neither a local path, a release in saelens-aligned's or "
        "SAELens' registry, nor a Hugging Face repo id (owner/name)."
    )


def is_trained_aligned(sae: SAE[Any]) -> bool:
    """Whether `sae`'s metadata names an aligned training architecture."""
    from saelens_aligned.architectures import aligned_architectures

    names = set(aligned_architectures())
    training = sae.cfg.metadata.get("training_architecture")
    return training in names or sae.cfg.architecture() in names


def load_sae(
    source: str | Path,
    sae_id: str | None = None,
    device: str = "cpu",
    dtype: str | None = None,
    force_download: bool = False,
) -> PretrainedSAE:
    """Load a SAELens SAE from a local dir, a local HF-layout folder, a release
    name or an HF repo id, with its alignment summary. See the module docstring."""
    from saelens_aligned.diagnostics import sae_alignment_summary

    sae_dir = resolve_sae_dir(source, sae_id, force_download=force_download)
    sae = load_sae_dir(sae_dir, device=device, dtype=dtype)
    return PretrainedSAE(
        sae=sae,
        alignment=sae_alignment_summary(sae),
        path=sae_dir,
        trained_aligned=is_trained_aligned(sae),
    )


@dataclass(frozen=True)
class ReleaseSAE:
    """One SAE of a release entry, as written to pretrained_saes.yaml.

    Args:
        id: the sae_id users pass.
        path: its folder in the repo.
        l0: measured L0, if known.
        variance_explained: measured explained variance, if known.
    """

    id: str
    path: str
    l0: float | None = None
    variance_explained: float | None = None


def release_entry(repo_id: str, model: str, saes: list[ReleaseSAE]) -> dict[str, Any]:
    """A release in the format of SAELens' pretrained_saes.yaml (one mapping value)."""
    entries = []
    for s in saes:
        entry: dict[str, Any] = {"id": s.id, "path": s.path}
        if s.l0 is not None:
            entry["l0"] = round(float(s.l0), 4)
        if s.variance_explained is not None:
            entry["variance_explained"] = round(float(s.variance_explained), 4)
        entries.append(entry)
    return {"repo_id": repo_id, "model": model, "saes": entries}
