"""Whether a folder may take a sweep: empty or new, or holding the same sweep
(a rerun resumes it) or one this config only adds arms to."""

import dataclasses
import json
from pathlib import Path
from typing import Any

from benchmarks.records.layout import SWEEP_FILENAME
from benchmarks.sweeps.config import ArchitectureSweep, SweepConfig, SweepError

EXTENDING_SETTINGS = ("bracket_factor",)
"""Settings that only add runs to a sweep: turned on for a folder whose sweep ran
without them, they extend it (its records stay valid)."""


def check_out_dir(config: SweepConfig, out_dir: Path) -> None:
    """Refuse an output folder that holds another sweep or other files. Eval
    settings the folder's sweep did not have yet are not compared. A config
    that keeps every setting and every arm of the folder's sweep and adds arms
    extends it: runs are named by arm label, so the records already there stay
    valid and only the new arms train (gated added to a finished sweep, say).
    So does one that turns on an EXTENDING_SETTINGS setting."""
    if out_dir.exists() and not out_dir.is_dir():
        raise SweepError(f"--out {str(out_dir)!r} is a file; choose a folder.")
    snapshot = out_dir / SWEEP_FILENAME
    if snapshot.exists():
        previous = json.loads(snapshot.read_text())
        current = json.loads(json.dumps(config.to_dict()))
        # A setting added after the folder's sweep ran, left at its default,
        # changes nothing the folder holds.
        current = _without_new_defaults(current, previous, SweepConfig)
        # So does an arm setting added since (`b_dec_init`), on each arm.
        old_arms = previous.get("architectures") or []
        current["architectures"] = [
            _without_new_defaults(arm, old, ArchitectureSweep)
            if isinstance(arm, dict) and isinstance(old, dict)
            else arm
            for arm, old in zip(
                current.get("architectures") or [],
                [*old_arms, *([{}] * len(current.get("architectures") or []))],
            )
        ]
        if isinstance(current.get("eval"), dict):
            # An eval added after the folder's sweep ran applies to runs evaluated
            # from then on; each record's skipped_evals says which evals it lacks.
            before = previous.get("eval") or {}
            current["eval"] = {k: v for k, v in current["eval"].items() if k in before}
        # A setting that only adds runs (brackets past the end targets) extends
        # the folder's sweep when that sweep ran without it.
        for name in EXTENDING_SETTINGS:
            if previous.get(name) is None:
                current.pop(name, None)
                previous.pop(name, None)
        if previous != current and not only_adds_arms(previous, current):
            raise SweepError(
                f"--out {str(out_dir)!r} holds a sweep with a different config "
                f"({snapshot}). Choose another --out, or delete that folder to start "
                "over; rerunning the same config there resumes it, and a config "
                "that only appends entries to `architectures` extends it."
            )
    elif out_dir.exists() and any(out_dir.iterdir()):
        raise SweepError(
            f"--out {str(out_dir)!r} exists and holds files that are not a sweep; "
            "choose an empty or new folder."
        )


def _without_new_defaults(
    current: dict[str, Any], previous: dict[str, Any], settings: type
) -> dict[str, Any]:
    """`current` less the fields of `settings` that `previous` lacks and that sit at
    their default (evals added since the folder's sweep ran, left off)."""
    defaults = {
        f.name: f.default_factory()
        if f.default_factory is not dataclasses.MISSING
        else f.default
        for f in dataclasses.fields(settings)
        if f.default is not dataclasses.MISSING
        or f.default_factory is not dataclasses.MISSING
    }
    return {
        k: v
        for k, v in current.items()
        if k in previous or k not in defaults or v != defaults[k]
    }


def only_adds_arms(previous: dict[str, Any], current: dict[str, Any]) -> bool:
    """Whether config `current` is `previous` with entries appended to
    `architectures` and nothing else changed (both as written to sweep.json)."""
    old_arms = previous.get("architectures", [])
    new_arms = current.get("architectures", [])
    rest_equal = {k: v for k, v in previous.items() if k != "architectures"} == {
        k: v for k, v in current.items() if k != "architectures"
    }
    return rest_equal and new_arms[: len(old_arms)] == old_arms
