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
``searchsorted``), so it runs on any device without a custom compiler. On CUDA the
TopK path makes no host synchronisation (offsets come from ``arange`` or
``searchsorted``, never ``bincount`` or ``nonzero``) and every reduction is
deterministic: sums over pairs are ``embedding_bag`` bags, accumulated in fp32
for the encoder bias, never atomics. Nothing here touches modules or files.
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
        per_token: the number of pairs of every token, where it is the same for
            all (TopK, AuxK); None where it varies (BatchTopK).
    """

    rows_N: torch.Tensor
    cols_N: torch.Tensor
    batch: int
    d_sae: int
    per_token: int | None = None

    def token_offsets(self) -> torch.Tensor:
        """Start of each token's pairs in the flat order (embedding_bag's
        `offsets`). [B]"""
        tokens_B = torch.arange(self.batch, device=self.rows_N.device)
        if self.per_token is not None:
            return tokens_B * self.per_token
        # Rows are sorted: a binary search needs no host sync (bincount does).
        return torch.searchsorted(self.rows_N, tokens_B)

    def select(self, keep_N: torch.Tensor) -> "ActivePairs":
        """The pairs where `keep_N` is true, still sorted."""
        return ActivePairs(
            self.rows_N[keep_N], self.cols_N[keep_N], self.batch, self.d_sae
        )

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
    return ActivePairs(rows_N, cols_BK.flatten(), batch, d_sae, per_token=k)


@torch.no_grad()
def batch_topk_pairs(
    hidden_pre_BF: torch.Tensor, k: float, floor: float | None = None
) -> ActivePairs:
    """SAELens' `BatchTopK` choice: the int(k B) largest ReLU'd pre-activations of
    the whole batch. [N = int(k B)]

    With a positive `floor` it first keeps the candidates above it and takes the
    top int(k B) of those: when there are at least that many, every chosen value
    is a candidate, so the set is the same as the full top-k's, in a fraction of
    its time. With fewer candidates (or no floor) it runs SAELens' full top-k.
    """
    batch, d_sae = hidden_pre_BF.shape
    n = int(k * batch)
    flat = hidden_pre_BF.flatten()
    flat_N = None
    if floor is not None and floor > 0:
        candidates_C = (flat > floor).nonzero().flatten()
        if candidates_C.numel() >= n:
            top_N = torch.topk(flat[candidates_C], n, sorted=False).indices
            flat_N = candidates_C[top_N]
    if flat_N is None:
        flat_N = torch.topk(flat.relu(), n, dim=-1).indices
    flat_N = torch.sort(flat_N).values
    return ActivePairs(flat_N // d_sae, flat_N % d_sae, batch, d_sae)


@torch.no_grad()
def dead_topk_pairs(
    hidden_pre_BF: torch.Tensor, dead_cols_K: torch.Tensor, k_aux: int
) -> tuple[ActivePairs, torch.Tensor]:
    """AuxK's choice: the `k_aux` largest pre-activations of each token among the
    dead latents `dead_cols_K` (ascending), as SAELens' `calculate_topk_aux_acts`
    chooses them. Only the dead columns are searched, so its cost scales with
    their number; `k_aux` must not exceed it. Also returns each pair's position
    in `dead_cols_K` (`dead_block_decode` reads it). ([N = B k_aux], [N])"""
    batch, d_sae = hidden_pre_BF.shape
    local_BK = torch.topk(
        hidden_pre_BF.index_select(1, dead_cols_K), k=k_aux, dim=-1, sorted=False
    ).indices
    local_BK = torch.sort(local_BK, dim=-1).values  # ascending columns, as TopK's
    rows_N = torch.arange(batch, device=local_BK.device).repeat_interleave(k_aux)
    local_N = local_BK.flatten()
    pairs = ActivePairs(rows_N, dead_cols_K[local_N], batch, d_sae, per_token=k_aux)
    return pairs, local_N


def dead_columns(dead_F: torch.Tensor, num_dead: int) -> torch.Tensor:
    """The indices of the dead latents, ascending. The caller already knows how
    many there are (AuxK needs the count), so no second host sync. [K]"""
    return torch.nonzero_static(dead_F, size=num_dead).flatten()


def _latent_order(pairs: ActivePairs) -> tuple[torch.Tensor, torch.Tensor]:
    """The pairs ordered by latent (stable), and each latent's first position in
    that order: the bags of a latent-major embedding_bag. ([N], [F])"""
    cols_sorted_N, order_N = torch.sort(pairs.cols_N, stable=True)
    latents_F = torch.arange(pairs.d_sae, device=cols_sorted_N.device)
    # A binary search needs no host sync (bincount does).
    return order_N, torch.searchsorted(cols_sorted_N, latents_F)


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
        grad b_c = sum_{n: c_n = c} u_n                (embedding_bag over ones)
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
            # W_enc^T is contiguous: every sparse-step SAE stores W_enc
            # feature-major (`alignment.feature_major`), so this is no copy.
            grad_in = _embedding_bag_sum(
                W_enc_DF.T.contiguous(), cols_N, pairs.token_offsets(), grad_N
            ).to(sae_in_BD.dtype)
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            order_N, latent_offsets_F = _latent_order(pairs)
            grad_sorted_N = grad_N[order_N]
        if ctx.needs_input_grad[1]:
            grad_enc_FD = _embedding_bag_sum(
                sae_in_BD.detach(), rows_N[order_N], latent_offsets_F, grad_sorted_N
            )
            grad_enc = grad_enc_FD.to(W_enc_DF.dtype).T
        if ctx.needs_input_grad[2]:
            # The same bags over a column of ones: each latent's sum of its
            # pairs' gradients, in fp32 and in a fixed order (SAELens' dense
            # step reduces its bias gradient deterministically in fp32 too;
            # index_add_ would use atomics on CUDA).
            ones_B1 = torch.ones(1, 1, dtype=torch.float32, device=grad_N.device)
            grad_bias = _embedding_bag_sum(
                ones_B1,
                torch.zeros_like(order_N),
                latent_offsets_F,
                grad_sorted_N.float(),
            )[:, 0].to(ctx.b_enc_dtype)
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


def dead_block_decode(
    W_dec_FD: torch.Tensor,
    dead_cols_K: torch.Tensor,
    pairs: ActivePairs,
    local_N: torch.Tensor,
    coefficients_N: torch.Tensor,
) -> torch.Tensor:
    """`sparse_decode` of AuxK's pairs (`dead_topk_pairs`) as one dense product
    over the dead sub-block: the coefficients scattered into [B, K] times the K
    dead decoder rows. The same sum as the sparse decode; cheaper when there are
    few dead latents (a GEMM against k_aux gathers per token). [B, D]"""
    assert pairs.per_token is not None
    coefficients_BK = torch.zeros(
        pairs.batch,
        dead_cols_K.numel(),
        dtype=W_dec_FD.dtype,
        device=W_dec_FD.device,
    ).scatter(
        1,
        local_N.view(pairs.batch, pairs.per_token),
        coefficients_N.to(W_dec_FD.dtype).view(pairs.batch, pairs.per_token),
    )
    return coefficients_BK @ W_dec_FD.index_select(0, dead_cols_K)
