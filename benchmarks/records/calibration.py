"""The calibration phase's record (`calibration.json` beside `records/`): per arm,
its rates' scores at the middle target L0, its chosen rate, and each target's
coefficient or the L0 reached and why not (`benchmarks.sweeps.calibration`
writes it; the sweep's main runs and report read it)."""

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.records.layout import write_json_atomic

CALIBRATION_FILENAME = "calibration.json"


@dataclass(frozen=True)
class CalibratedPoint:
    """One target L0 of an arm, at its chosen rate.

    Args:
        target_l0: The target.
        coefficient: The coefficient whose trial reached it; None if none did.
        l0: That trial's L0 (the nearest trial's when none reached it).
        trials: Trials at the chosen rate when the search ended.
        why: Why the target was not reached, else "".
    """

    target_l0: float
    coefficient: float | None
    l0: float
    trials: int
    why: str = ""


@dataclass(frozen=True)
class ArmCalibration:
    """An arm's calibration.

    Args:
        label: The arm.
        lr: Its chosen rate.
        rate_scores: Rate -> `lr_metric` at the middle target L0 (NaN where no
            trial reached it).
        points: Each target, at `lr`.
    """

    label: str
    lr: float
    rate_scores: dict[float, float]
    points: list[CalibratedPoint] = field(default_factory=list)

    @property
    def coefficients(self) -> list[float]:
        """The coefficients of the targets reached: the arm's main sparsity values."""
        return [p.coefficient for p in self.points if p.coefficient is not None]

    def bracket_coefficients(self, factor: float) -> list[float]:
        """Coefficients meant to land at L0 = the lowest target / `factor` and the
        highest target x `factor`: each end's two nearest reached points, extended
        along their line in log coefficient against log L0 (no search), at three
        significant figures. [] with fewer than two reached points."""
        reached = sorted(
            (p for p in self.points if p.coefficient is not None and p.l0 > 0),
            key=lambda p: p.l0,
        )
        if len(reached) < 2:
            return []
        ends = (
            (reached[0], reached[1], reached[0].target_l0 / factor),
            (reached[-1], reached[-2], reached[-1].target_l0 * factor),
        )
        out = []
        for near, far, target in ends:
            slope = math.log(far.coefficient / near.coefficient) / math.log(
                far.l0 / near.l0
            )
            coefficient = near.coefficient * (target / near.l0) ** slope
            out.append(float(f"{coefficient:.3g}"))
        return out

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["rate_scores"] = {f"{lr:g}": s for lr, s in self.rate_scores.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ArmCalibration":
        return cls(
            label=data["label"],
            lr=float(data["lr"]),
            rate_scores={float(k): v for k, v in data["rate_scores"].items()},
            points=[CalibratedPoint(**p) for p in data["points"]],
        )


def read_calibration(out_dir: Path) -> dict[str, ArmCalibration]:
    """Label -> calibration, from CALIBRATION_FILENAME ({} when absent)."""
    path = Path(out_dir) / CALIBRATION_FILENAME
    if not path.exists():
        return {}
    return {
        label: ArmCalibration.from_dict(data)
        for label, data in json.loads(path.read_text()).items()
    }


def write_calibration(out_dir: Path, calibration: dict[str, ArmCalibration]) -> None:
    """CALIBRATION_FILENAME, keeping arms calibrated by an earlier part of the
    sweep (`--bases`, `--arms`)."""
    merged = {**read_calibration(out_dir), **calibration}
    write_json_atomic(
        Path(out_dir) / CALIBRATION_FILENAME,
        {label: merged[label].to_dict() for label in sorted(merged)},
        indent=1,
    )
