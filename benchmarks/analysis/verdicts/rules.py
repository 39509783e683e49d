"""The claims the benchmark judges, what each is judged on, and against whom.

Every rule is stated once here and quoted by the reports (`RULES_TEXT`).
"""

from dataclasses import dataclass

from benchmarks.analysis.verdicts.matching import L0_REL_TOL
from benchmarks.records.run_table import STABILITY

MIN_SEEDS = 3
"""Paired seeds an aligned point needs to be compared."""
MIN_POINTS = 3
"""Compared points a base needs before its comparisons make a verdict."""
DEAD_ELIMINATED = 0.01
"""Dead fraction at or below which a seed has no dead features to speak of; two
arms both at or below it tie."""

STOCK_BASE = "stock base"
FAIR_CONTROL = "fair control"
DIAGNOSTIC = "tied-init diagnostic"
ROLES = (STOCK_BASE, FAIR_CONTROL)
"""The references a verdict is judged against, in table order."""
CENTRED_BASE = "mean-centred base"
"""A third reference where a sweep has one (`judge_sweep(roles=...)`): the stock
base with its decoder bias started at the activations' mean
(`b_dec_init: mean`), the cheapest competing fix for dead latents (Simon, Adams &
Zou 2026, arXiv 2605.31518)."""
FAIR_CONTROL_START: dict[str, str] = {"tied": "projected", "projected": "projected"}
"""Alignment form -> the start (`init_from`) of its fair control: the base
architecture from the balanced init (e_i = d_i at unit norm), the start `tied`
shares its step-0 function with (docs/method.md, "The fair control")."""
DIAGNOSTIC_START: dict[str, str] = {"tied": "tied"}
"""Form -> a control shown but never judged against: the base from `tied`'s own
start (encoder norm 0.1, decoder norm 10), which collapses because Adam cannot
move a norm-10 decoder at these rates."""


RELIABILITY_STUDY = "Chanin 2026 (arXiv 2605.18229)"
"""The reliability study of the SAEBench-family metrics the feature-quality
claims follow."""
FAILS_RELIABILITY = "fails Chanin 2026's reliability tests"
"""The mark every table puts beside a metric that study finds unreliable."""
RELIABILITY_TEXT = (
    f"In {RELIABILITY_STUDY}, sae-probes' k-sparse probing is the most reliable "
    "of the SAEBench-family metrics, and TPP and SCR fail its tests: TPP stays in "
    "the records and tables, marked as failing them, and sparse probing is the "
    "feature-quality claim."
)


@dataclass(frozen=True)
class ClaimSpec:
    """One claim on one metric.

    Args:
        claim: The paper's claim, in the table's words.
        metric: The per-run column (`records.FLAT_METRICS`) or `stability`.
        higher_is_better: The metric's better direction.
        display: The metric's name in tables.
        caveat: Why a reader should doubt the metric itself, shown beside its
            name wherever a verdict on it is ("" when none).
    """

    claim: str
    metric: str
    higher_is_better: bool
    display: str
    caveat: str = ""

    @property
    def label(self) -> str:
        """The metric's name with its caveat, for tables of verdicts."""
        return f"{self.display} ({self.caveat})" if self.caveat else self.display


DEAD_CLAIM = "dead features eliminated"
RECONSTRUCTION_CLAIM = "reconstruction improved"
STABILITY_CLAIM = "stability improved"
SPARSE_PROBING_CLAIM = "sparse probing improved"

CLAIM_SPECS: tuple[ClaimSpec, ...] = (
    ClaimSpec(DEAD_CLAIM, "dead_fraction_long", False, "dead fraction (long window)"),
    ClaimSpec(DEAD_CLAIM, "dead_fraction", False, "dead fraction"),
    ClaimSpec(RECONSTRUCTION_CLAIM, "explained_variance", True, "explained variance"),
    ClaimSpec(RECONSTRUCTION_CLAIM, "ce_loss_score", True, "CE-loss score"),
    ClaimSpec("ground truth improved", "mcc", True, "MCC"),
    ClaimSpec("ground truth improved", "f1", True, "F1"),
    ClaimSpec(STABILITY_CLAIM, STABILITY, True, "shared fraction"),
    ClaimSpec("absorption reduced", "absorption_fraction", False, "absorption"),
    ClaimSpec("absorption reduced", "absorption_full", False, "full absorption"),
    ClaimSpec(
        SPARSE_PROBING_CLAIM,
        "sae_probes_top1",
        True,
        "sae-probes k-sparse probing, top-1",
    ),
    ClaimSpec(
        SPARSE_PROBING_CLAIM,
        "sparse_probing_top1",
        True,
        "SAEBench sparse probing, top-1",
    ),
    ClaimSpec("TPP improved", "tpp_total", True, "TPP", FAILS_RELIABILITY),
)
"""Each claim once per metric: correlated metrics (explained variance and CE-loss
score) are separate rows, never one pooled count. Dead features are judged on
the long window where recorded, else on SAEBench's window. Sparse probing is
judged on sae-probes' k-sparse probing first, the most reliable metric of
RELIABILITY_STUDY, then on SAEBench's own sparse probing; TPP is judged but
carries its caveat."""
PARETO_METRICS = ("explained_variance", "ce_loss_score")
"""The Pareto row: reconstruction against L0, one count per metric."""
COMPOSITIONS: dict[str, str] = {
    "composes with TopK": "topk",
    "composes with BatchTopK": "batchtopk",
    "composes with p-annealing": "panneal",
}
"""Claim -> the base architecture whose rows it summarises."""

RULES_TEXT = f"""\
- **References.** Each aligned arm is judged against its **stock base** (the base
  architecture as SAELens starts it) and its **fair control** (the base
  architecture from the balanced init, e_i = d_i at unit norm, trained without the
  constraint: the start `projected` takes and the one `tied` shares its step-0
  function with). The base from `tied`'s own start collapses (its norm-10 decoder
  never moves) and is shown as a diagnostic, never judged against.
- **Matched L0, paired by seed.** An aligned seed is compared with the
  reference's same seed (arms share seeds, data order and evaluation tokens),
  read off that seed's own curve at the aligned seed's L0 (linear in log L0, up
  to {L0_REL_TOL:.0%} beyond its end points, continuing the end segment: the
  matched sweeps calibrate each arm to within 5–10% of the same target); outside
  it, "no overlap". A point needs {MIN_SEEDS} paired seeds; stability pairs seed
  pairs likewise.
- **Outcome of a point.** Student t on the per-seed differences; better or worse
  when the Benjamini-Hochberg corrected p-value, over every comparison of the
  claim's metric for that form and reference, is below 0.05; else a tie. Two dead
  fractions both at or below {DEAD_ELIMINATED:.0%} tie.
- **Verdict.** Counts every point with its direction, ties included: "better at
  5, tie at 1 of 6", "better at 2, worse at 3, tie at 1 of 6".
  Each base has its own row; a base with fewer than {MIN_POINTS} compared points
  is "insufficient data" there and is left out of the pooled row, which lists
  the bases behind it. A point whose seed mean collapses (L2 ratio < 0.3, CE-loss
  score or explained variance < 0) is left out of both sides and named.
- **Feature quality.** {RELIABILITY_TEXT}
- **Learning rates.** An arm whose chosen rate is the lowest or highest of its
  grid, with no stated bound there, is flagged on every row it enters.
"""
