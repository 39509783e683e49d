"""Pure tensor ops of the sparse TopK training step: selection, gathered
pre-activations and decoding over the active (token, latent) pairs only.

A TopK-family step needs every pre-activation once, to choose the active latents;
everything after the choice touches only the ``N`` active pairs (``N = B k`` for
TopK). SAELens' dense step instead scatters the choice back into a ``[B, F]``
tensor and runs every later product, and the encoder's backward, over all of it.
Here the active pairs are kept as three flat tensors sorted by token, then by
latent (``rows_N``, ``cols_N`` and their values), which is also exactly the
layout of a coalesced sparse COO tensor, the form SAELens' trainer reads for its
dead-latent statistics.

Shape suffixes as in `alignment.py`: ``B`` batch, ``D`` d_in, ``F`` d_sae, ``N``
active pairs. Every op is plain PyTorch (``topk``, ``embedding_bag``,
``index_add_``), so it runs on any device without a custom compiler. Nothing here
touches modules or files.
"""

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F


class ActivePairs(NamedTuple):
    """The active (token, latent) pairs of a batch, sorted by token then latent.

    Args:
        rows_N: token (row) index of each pair.
        cols_N: latent (column) index of each pair.
        batch: number of tokens B (some may have no pair).
        d_sae: number of latents F.
    """

    rows_N: torch.Tensor
    cols_N: torch.Tensor
    batch: int
    d_sae: int

    def token_offsets(self) -> torch.Tensor:
        """Start of each token's pairs in the flat order (embedding_bag's
        `offsets`). [B]"""
        return _exclusive_cumsum(torch.bincount(self.rows_N, minlength=self.batch))

    def select(self, keep_N: torch.Tensor) -> "ActivePairs":
        """The pairs where `keep_N` is true, still sorted."""
        return ActivePairs(self.rows_N[keep_N], self.cols_N[keep_N], *self[2:])

    def to_sparse(self, values_N: torch.Tensor) -> torch.Tensor:
        """A coalesced sparse COO tensor [B, F] holding `values_N` at the pairs;
        differentiable w.r.t. `values_N` (its `.values()` gives them back)."""
        return torch.sparse_coo_tensor(
            torch.stack([self.rows_N, self.cols_N]),
            values_N,
            (self.batch, self.d_sae),
            is_coalesced=True,
            # Built from sorted, in-range indices; checking them costs a pass.
            check_invariants=False,
        )


def pairs_of_sparse(feature_acts: torch.Tensor) -> tuple[ActivePairs, torch.Tensor]:
    """The pairs and values of a coalesced COO tensor made by `ActivePairs.to_sparse`
    (the values keep their autograd graph). ([N], [N])"""
    indices = feature_acts.indices()
    batch, d_sae = feature_acts.shape
    return ActivePairs(indices[0], indices[1], batch, d_sae), feature_acts.values()


def _exclusive_cumsum(counts: torch.Tensor) -> torch.Tensor:
    out = torch.zeros_like(counts)
    torch.cumsum(counts[:-1], dim=0, out=out[1:])
    return out


def _row_major(rows_N: torch.Tensor, cols_N: torch.Tensor, d_sae: int) -> torch.Tensor:
    # Sorting the flat index orders pairs by token, then by latent.
    return torch.argsort(rows_N * d_sae + cols_N)


@torch.no_grad()
def topk_pairs(hidden_pre_BF: torch.Tensor, k: int) -> ActivePairs:
    """SAELens' `TopK` choice: the k largest pre-activations of each token, chosen
    by the same `torch.topk` call (so ties break the same way). [N = B k]"""
    batch, d_sae = hidden_pre_BF.shape
    cols_BK = torch.topk(hidden_pre_BF, k=k, dim=-1, sorted=False).indices
    # Sorted within each token, the pairs are the layout of a coalesced COO tensor,
    # which the trainer's statistics then read without a sort of their own.
    cols_BK = torch.sort(cols_BK, dim=-1).values
    rows_N = torch.arange(batch, device=cols_BK.device).repeat_interleave(k)
    return ActivePairs(rows_N, cols_BK.flatten(), batch, d_sae)


@torch.no_grad()
def batch_topk_pairs(hidden_pre_BF: torch.Tensor, k: float) -> ActivePairs:
    """SAELens' `BatchTopK` choice: the int(k B) largest ReLU'd pre-activations of
    the whole batch, by the same `torch.topk` call. [N = int(k B)]"""
    batch, d_sae = hidden_pre_BF.shape
    flat_N = torch.topk(hidden_pre_BF.relu().flatten(), int(k * batch), dim=-1)
    flat_N = torch.sort(flat_N.indices).values
    return ActivePairs(flat_N // d_sae, flat_N % d_sae, batch, d_sae)


@torch.no_grad()
def dead_topk_pairs(
    hidden_pre_BF: torch.Tensor, dead_F: torch.Tensor, k_aux: int
) -> ActivePairs:
    """AuxK's choice: the `k_aux` largest pre-activations of each token among the
    dead latents (`dead_F`), as SAELens' `calculate_topk_aux_acts` chooses them.
    Only the dead columns are searched, so its cost scales with their number;
    `k_aux` must not exceed it."""
    batch, d_sae = hidden_pre_BF.shape
    dead_cols = dead_F.nonzero().flatten()
    local_BK = torch.topk(
        hidden_pre_BF.index_select(1, dead_cols), k=k_aux, dim=-1, sorted=False
    ).indices
    cols_BK = torch.sort(dead_cols[local_BK], dim=-1).values
    rows_N = torch.arange(batch, device=cols_BK.device).repeat_interleave(k_aux)
    return ActivePairs(rows_N, cols_BK.flatten(), batch, d_sae)


def _latent_order(pairs: ActivePairs) -> tuple[torch.Tensor, torch.Tensor]:
    """The pairs ordered by latent (stable), and each latent's first position in
    that order: the bags of a latent-major embedding_bag. ([N], [F])"""
    order_N = torch.argsort(pairs.cols_N, stable=True)
    counts_F = torch.bincount(pairs.cols_N, minlength=pairs.d_sae)
    return order_N, _exclusive_cumsum(counts_F)


def _embedding_bag_sum(
    table: torch.Tensor,
    indices_N: torch.Tensor,
    offsets: torch.Tensor,
    weights_N: torch.Tensor,
) -> torch.Tensor:
    # embedding_bag needs its per-sample weights in the table's dtype; autocast
    # leaves it alone, so a bf16 weight vector meets an fp32 table here.
    return F.embedding_bag(
        indices_N,
        table,
        offsets,
        mode="sum",
        per_sample_weights=weights_N.to(table.dtype),
        include_last_offset=False,
    )


class _GatheredPreActs(torch.autograd.Function):
    """h_n = (<x_{r_n}, e_{c_n}> + b_{c_n}) s_n at each active pair n = (r_n, c_n),
    whose value the dense encoder GEMM has already computed: forward returns it as
    given, backward scatters only over the pairs. With g_n the gradient w.r.t. h_n
    and u_n = g_n s_n:

        grad x_r = sum_{n: r_n = r} u_n e_{c_n}        (embedding_bag over W_enc^T)
        grad e_c = sum_{n: c_n = c} u_n x_{r_n}        (embedding_bag over x)
        grad b_c = sum_{n: c_n = c} u_n                (index_add)
        grad s_n = g_n h_n / s_n                       (0 where s_n = 0)

    s_n is the decoder-norm rescaling of TopK's `rescale_acts_by_decoder_norm`
    (None: no rescaling). No [B, F] tensor is formed; every product is O(N d_in).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        sae_in_BD: torch.Tensor,
        W_enc_DF: torch.Tensor,
        b_enc_F: torch.Tensor,
        scale_N: torch.Tensor | None,
        rows_N: torch.Tensor,
        cols_N: torch.Tensor,
        values_N: torch.Tensor,
        d_sae: int,
    ) -> torch.Tensor:
        ctx.save_for_backward(sae_in_BD, W_enc_DF, scale_N, rows_N, cols_N, values_N)
        ctx.d_sae = d_sae
        ctx.b_enc_dtype = b_enc_F.dtype
        return values_N.view_as(values_N)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_N: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        sae_in_BD, W_enc_DF, scale_N, rows_N, cols_N, values_N = ctx.saved_tensors
        pairs = ActivePairs(rows_N, cols_N, sae_in_BD.shape[0], ctx.d_sae)
        grad_scale = None
        if scale_N is not None:
            if ctx.needs_input_grad[3]:
                safe_N = torch.where(scale_N != 0, scale_N, 1)
                grad_scale = torch.where(
                    scale_N != 0, grad_N * values_N / safe_N, 0
                ).to(scale_N.dtype)
            grad_N = grad_N * scale_N
        grad_in = grad_enc = grad_bias = None
        if ctx.needs_input_grad[0]:
            # W_enc^T is contiguous when W_enc is stored feature-major (aligned
            # SAEs); otherwise this is one copy of the encoder.
            grad_in = _embedding_bag_sum(
                W_enc_DF.T.contiguous(), cols_N, pairs.token_offsets(), grad_N
            ).to(sae_in_BD.dtype)
        if ctx.needs_input_grad[1]:
            order_N, latent_offsets_F = _latent_order(pairs)
            grad_enc_FD = _embedding_bag_sum(
                sae_in_BD.detach(), rows_N[order_N], latent_offsets_F, grad_N[order_N]
            )
            grad_enc = grad_enc_FD.to(W_enc_DF.dtype).T
        if ctx.needs_input_grad[2]:
            grad_bias = torch.zeros(
                ctx.d_sae, dtype=ctx.b_enc_dtype, device=grad_N.device
            ).index_add_(0, cols_N, grad_N.to(ctx.b_enc_dtype))
        return grad_in, grad_enc, grad_bias, grad_scale, None, None, None, None


def gathered_pre_acts(
    sae_in_BD: torch.Tensor,
    W_enc_DF: torch.Tensor,
    b_enc_F: torch.Tensor,
    pairs: ActivePairs,
    values_N: torch.Tensor,
    scale_F: torch.Tensor | None = None,
) -> torch.Tensor:
    """The pre-activations `(sae_in @ W_enc + b_enc) * scale` at `pairs`, given their
    values (`values_N`, read off the dense GEMM), differentiable w.r.t. the input,
    the encoder, its bias and the per-latent scale through sparse products only.
    [N]"""
    scale_N = None if scale_F is None else scale_F[pairs.cols_N]
    return _GatheredPreActs.apply(
        sae_in_BD,
        W_enc_DF,
        b_enc_F,
        scale_N,
        pairs.rows_N,
        pairs.cols_N,
        values_N,
        pairs.d_sae,
    )


def sparse_decode(
    W_dec_FD: torch.Tensor, pairs: ActivePairs, coefficients_N: torch.Tensor
) -> torch.Tensor:
    """sum_n coefficient_n d_{c_n} per token, reading only the active decoder rows
    (embedding_bag; its backward gives W_dec a gradient on those rows alone and
    each coefficient its dot product with them). No bias. [B, D]"""
    return _embedding_bag_sum(
        W_dec_FD, pairs.cols_N, pairs.token_offsets(), coefficients_N
    )
