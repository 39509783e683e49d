"""Which features two SAEs share, which each lacks, and which are dead or duplicated.

Pure functions of decoder weights and densities (tensors in, records out), apart
from any model, file or page.

Two SAEs trained on the same activations are compared latent by latent as in
Paulo & Belrose (2025): their decoder rows are matched one to one so that the
total cosine similarity is largest (the Hungarian algorithm, scipy's
`linear_sum_assignment`), and a latent is **shared** when its partner's decoder
cosine exceeds `SHARED_COSINE`; the benchmark's stability criterion
(`benchmarks/stability.py`) uses the same rule and threshold. A latent of A that
is not shared is one **A has and B lacks**. Within one SAE, a latent is a
**duplicate** when another latent's decoder row is nearly the same direction
(cosine above `DUPLICATE_COSINE`), and **dead** when it never fired on the tokens
read.
"""

from dataclasses import dataclass

import torch

from saelens_aligned.latent_matching import match_latents

# Matched decoder rows above this cosine are the same feature (Paulo & Belrose 2025;
# the benchmark's stability threshold).
SHARED_COSINE = 0.7
# Two latents of one SAE whose decoder rows are closer than this write nearly the
# same direction: one of them is redundant. Stricter than SHARED_COSINE because
# features of one dictionary are pushed apart by training; above 0.9 they are
# hard to tell apart by their contexts.
DUPLICATE_COSINE = 0.9


def unit_rows(w_FD: torch.Tensor) -> torch.Tensor:
    """Rows of `w_FD` at unit norm, in float32; an all-zero row stays zero (cosine
    0 with everything). [F, D]"""
    w_FD = w_FD.detach().float()
    return w_FD / w_FD.norm(dim=1, keepdim=True).clamp_min(1e-12)


@dataclass(frozen=True)
class FeatureMatch:
    """A latent of A and its partner in B.

    Attributes:
        a: Latent index in A.
        b: Its partner in B.
        cosine: cos(d_a^A, d_b^B) of their decoder rows.
    """

    a: int
    b: int
    cosine: float

    @property
    def shared(self) -> bool:
        return self.cosine > SHARED_COSINE


@dataclass(frozen=True)
class Matching:
    """A one-to-one matching of A's latents to B's by decoder cosine.

    Attributes:
        pairs: One per matched latent of A, in ascending order of `a` (every latent
            of A when A has no more latents than B).
        only_in_a: Latents of A that B lacks (unmatched, or matched at cosine
            <= SHARED_COSINE), ascending.
        only_in_b: Latents of B that A lacks, ascending.
        n_a: Latents of A.
        n_b: Latents of B.
    """

    pairs: tuple[FeatureMatch, ...]
    only_in_a: tuple[int, ...]
    only_in_b: tuple[int, ...]
    n_a: int
    n_b: int

    def partner_of(self, a: int) -> FeatureMatch | None:
        """The match of A's latent `a`, or None when it has none."""
        return next((pair for pair in self.pairs if pair.a == a), None)

    @property
    def shared_fraction(self) -> float:
        """Fraction of A's latents that B shares."""
        return 1.0 - len(self.only_in_a) / max(self.n_a, 1)


@torch.no_grad()
def match_decoders(w_dec_a_FD: torch.Tensor, w_dec_b_GD: torch.Tensor) -> Matching:
    """Match A's latents to B's one to one by decoder cosine, as the benchmark's
    stability does (`saelens_aligned.latent_matching.match_latents`: Hungarian,
    greedy above `HUNGARIAN_MAX_N` latents).

    Args:
        w_dec_a_FD: A's decoder rows. [F, D]
        w_dec_b_GD: B's decoder rows, the same width D. [G, D]
    """
    if w_dec_a_FD.ndim != 2 or w_dec_a_FD.shape[1] != w_dec_b_GD.shape[-1]:
        raise ValueError(
            f"Decoders of shapes {tuple(w_dec_a_FD.shape)} and "
            f"{tuple(w_dec_b_GD.shape)} do not read the same width."
        )
    matching = match_latents(
        w_dec_a_FD.detach().float().cpu().numpy(),
        w_dec_b_GD.detach().float().cpu().numpy(),
    )
    pairs = tuple(
        FeatureMatch(int(a), int(b), float(cos))
        for a, b, cos in zip(
            matching.row_ind, matching.col_ind, matching.cos, strict=True
        )
    )
    n_a, n_b = w_dec_a_FD.shape[0], w_dec_b_GD.shape[0]
    shared_a = {pair.a for pair in pairs if pair.shared}
    shared_b = {pair.b for pair in pairs if pair.shared}
    return Matching(
        pairs=pairs,
        only_in_a=tuple(i for i in range(n_a) if i not in shared_a),
        only_in_b=tuple(j for j in range(n_b) if j not in shared_b),
        n_a=n_a,
        n_b=n_b,
    )


@dataclass(frozen=True)
class Duplicate:
    """A latent whose decoder row nearly repeats an earlier latent's.

    Attributes:
        latent: The later latent (higher index).
        of: The earlier latent it repeats.
        cosine: Their decoder cosine.
    """

    latent: int
    of: int
    cosine: float


@torch.no_grad()
def duplicate_latents(
    w_dec_FD: torch.Tensor, threshold: float = DUPLICATE_COSINE
) -> tuple[Duplicate, ...]:
    """Every latent whose decoder row has cosine above `threshold` with a latent of
    lower index, paired with the closest such latent; ascending. All-zero rows
    (never trained) are left out: they have no direction. [F, D] in."""
    unit_FD = unit_rows(w_dec_FD)
    cos_FF = (unit_FD @ unit_FD.T).tril(diagonal=-1)
    best_F, of_F = cos_FF.max(dim=1)
    return tuple(
        Duplicate(i, int(of_F[i]), float(best_F[i]))
        for i in torch.nonzero(best_F > threshold).flatten().tolist()
    )


def dead_latents(density_F: torch.Tensor) -> tuple[int, ...]:
    """Latents that never fired (density 0), ascending. [F] in."""
    return tuple(torch.nonzero(density_F <= 0).flatten().tolist())
