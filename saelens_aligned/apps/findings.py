"""What the benchmark found when the demo's comparison is trained longer, as a typed
record shipped with the package (`benchmark_findings.json`) and the one sentence
the demo's report prints from it.

The demo trains for a few minutes; the benchmark's committed records
(`benchmarks/results/`, not in the wheel) trained the same three arms (stock base,
fair control, aligned) much longer. `python -m benchmarks.release.demo_findings` writes
the file from those records and a test fails when the committed file differs, so
the sentence is never typed by hand.
"""

import json
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

FINDINGS_FILENAME = "benchmark_findings.json"
# A share of stock's dead latents the fair control removes above which the
# sentence says "most".
MOST = 0.5


@dataclass(frozen=True)
class ArmSummary:
    """Seed means of one arm at one training length.

    Args:
        ce_loss_score: SAEBench's CE-loss score.
        dead_fraction: Fraction of latents that never fired on the evaluated tokens.
        l0: Mean active latents per token.
    """

    ce_loss_score: float
    dead_fraction: float
    l0: float


@dataclass(frozen=True)
class PairedGap:
    """Mean per-seed difference (aligned - stock) with its 95% t interval.

    Args:
        mean: Mean difference.
        low: Lower end of the interval.
        high: Upper end.
        n: Seeds paired.
    """

    mean: float
    low: float
    high: float
    n: int

    def verdict(self) -> str:
        if self.low <= 0 <= self.high:
            return "a tie"
        return "aligned ahead" if self.mean > 0 else "stock ahead"


@dataclass(frozen=True)
class LengthFindings:
    """The three arms at one training length of one committed sweep.

    Args:
        sweep: The sweep folder the records come from (relative to the repo).
        source: What that sweep is ("learning curves", "main runs").
        step: Training step of the records.
        training_tokens: Tokens trained on by that step.
        stock: The stock base (SAELens' own init).
        fair_control: The stock base from the balanced init.
        aligned: The aligned arm.
        ce_gap: aligned - stock CE-loss score, paired by seed.
    """

    sweep: str
    source: str
    step: int
    training_tokens: int
    stock: ArmSummary
    fair_control: ArmSummary
    aligned: ArmSummary
    ce_gap: PairedGap

    def dead_removed_by_control(self) -> float:
        """The share of stock's dead latents the balanced init alone removes."""
        if self.stock.dead_fraction <= 0:
            return 0.0
        return 1 - self.fair_control.dead_fraction / self.stock.dead_fraction

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LengthFindings":
        arms = {
            name: ArmSummary(**data[name])
            for name in ("stock", "fair_control", "aligned")
        }
        return cls(
            sweep=data["sweep"],
            source=data["source"],
            step=int(data["step"]),
            training_tokens=int(data["training_tokens"]),
            ce_gap=PairedGap(**data["ce_gap"]),
            **arms,
        )


@dataclass(frozen=True)
class BenchmarkFindings:
    """The benchmark's stock / fair control / aligned comparison at several
    training lengths (shortest first), for the demo's architecture.

    Args:
        corpus: Text the benchmark trained on.
        architecture: The stock base ("topk").
        aligned_architecture: Its aligned variant ("aligned_topk").
        alignment: The aligned arm's form ("tied", the demo's).
        k: Active latents per token, the same for every arm (matched sparsity).
        d_sae: Number of latents.
        seeds: Seeds every arm ran with (the pairing unit).
        lengths: The comparison at each length, shortest first.
    """

    corpus: str
    architecture: str
    aligned_architecture: str
    alignment: str
    k: int
    d_sae: int
    seeds: tuple[int, ...]
    lengths: tuple[LengthFindings, ...]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "BenchmarkFindings":
        data = json.loads(text)
        return cls(
            corpus=data["corpus"],
            architecture=data["architecture"],
            aligned_architecture=data["aligned_architecture"],
            alignment=data["alignment"],
            k=int(data["k"]),
            d_sae=int(data["d_sae"]),
            seeds=tuple(int(s) for s in data["seeds"]),
            lengths=tuple(LengthFindings.from_dict(x) for x in data["lengths"]),
        )

    def sentence(self) -> str:
        """One sentence: the CE-loss gap at the shortest and longest length, and
        the dead fractions of the three arms at every length."""
        first, last = self.lengths[0], self.lengths[-1]
        aligned = f"`{self.alignment}`"
        shares = [length.dead_removed_by_control() for length in self.lengths]
        removes = (
            "removes most dead latents"
            if min(shares) > MOST
            else f"removes {min(shares):.0%} to {max(shares):.0%} of stock's dead "
            "latents"
        )
        dead = ", ".join(
            f"{x.stock.dead_fraction:.3f} / {x.fair_control.dead_fraction:.3f} / "
            f"{x.aligned.dead_fraction:.3f} after {_tokens(x.training_tokens)}"
            + ("" if x.source == last.source else f" ({x.source})")
            for x in self.lengths
        )
        return (
            f"Trained longer in the benchmark ({self.corpus} text, "
            f"`{self.architecture}` k {self.k}, d_sae {self.d_sae}, "
            f"{len(self.seeds)} seeds paired), {aligned} − stock CE-loss score in "
            f"the {last.source} goes from {_gap(first.ce_gap)} after {_tokens(first.training_tokens)} to "
            f"{_gap(last.ce_gap)} after {_tokens(last.training_tokens)} "
            f"({last.ce_gap.verdict()}), and the balanced init alone (the fair "
            f"control) {removes} (dead fraction stock / fair control / {aligned}: "
            f"{dead})."
        )


def _tokens(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1e6:.2f}M tokens"
    return f"{n / 1e3:.0f}k tokens"


def _gap(gap: PairedGap) -> str:
    return f"{gap.mean:+.3f} [{gap.low:+.3f}, {gap.high:+.3f}]"


def findings_path() -> Path:
    """The packaged findings file."""
    return Path(str(resources.files("saelens_aligned.apps") / FINDINGS_FILENAME))


def load_findings() -> BenchmarkFindings:
    """The packaged findings."""
    return BenchmarkFindings.from_json(findings_path().read_text())
