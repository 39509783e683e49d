"""Sweep configs from presets and YAML files, checked before any model loads.

from benchmarks.sweeps.presets import load_sweep_config
config = load_sweep_config("cpu")              # benchmarks/configs/cpu.yaml
config = load_sweep_config("my_sweep.yaml")    # any YAML file of the same shape
"""

from pathlib import Path
from typing import Any

import yaml

from benchmarks.sweeps.config import (
    ArchitectureSweep,
    EvalSettings,
    SweepConfig,
    SweepConfigError,
)
from benchmarks.sweeps.config_checks import check_fields, validate_sweep_config
from saelens_aligned.errors import one_line

CONFIG_DIR = Path(__file__).parents[1] / "configs"
# Every YAML file of configs/ is a preset, named by its stem.
PRESETS = tuple(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))


def sweep_config_from_dict(data: dict[str, Any], source: str = "config") -> SweepConfig:
    """A checked `SweepConfig` from a YAML mapping (or `SweepConfig.to_dict`'s);
    `source` names it in errors."""
    data = dict(data)
    check_fields(SweepConfig, data, source)
    architectures = []
    for i, arch in enumerate(data.pop("architectures", [])):
        where = f"{source}: architectures[{i}]"
        if not isinstance(arch, dict):
            raise SweepConfigError(f"{where} must be a mapping, got {arch!r}.")
        check_fields(ArchitectureSweep, arch, where)
        try:
            architectures.append(ArchitectureSweep(**arch))
        except TypeError as e:
            raise SweepConfigError(f"{where}: {e}") from e
    eval_data = data.pop("eval", {}) or {}
    check_fields(EvalSettings, eval_data, f"{source}: eval")
    config = SweepConfig(
        architectures=architectures, eval=EvalSettings(**eval_data), **data
    )
    validate_sweep_config(config, source)
    return config


def load_sweep_config(preset_or_path: str | Path) -> SweepConfig:
    """A preset name (`ci`, `cpu`, `synthetic`, `synthetic_cpu`, `gpu`) or a YAML
    file path."""
    path = Path(preset_or_path)
    if str(preset_or_path) in PRESETS:
        path = CONFIG_DIR / f"{preset_or_path}.yaml"
    elif not path.exists():
        raise SweepConfigError(
            f"--preset {str(preset_or_path)!r} is neither a preset ({list(PRESETS)}) "
            "nor an existing YAML file."
        )
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise SweepConfigError(f"{path}: not valid YAML ({one_line(e)}).") from e
    if not isinstance(data, dict):
        raise SweepConfigError(f"{path}: expected a mapping of config fields.")
    return sweep_config_from_dict(data, source=str(path))
