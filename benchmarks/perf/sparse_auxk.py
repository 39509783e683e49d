"""Where AuxK's reconstruction is cheaper dense than sparse: the crossover behind
`sparse_topk.AUXK_DENSE_MAX_DEAD_PER_PAIR`.

AuxK reconstructs each token from its k_aux = d_in / 2 largest dead
pre-activations. The sparse step decodes them either with `sparse_decode`
(k_aux gathered decoder rows per token) or with `dead_block_decode` (one GEMM
against all dead rows). The first costs O(B k_aux d_in) memory-bound gathers, the
second O(B num_dead d_in) GEMM work, so the dense product wins below some number
of dead latents per AuxK pair. `auxk_crossover` times the reconstruction's
forward and backward both ways on the same pairs, interleaved, per dead count.
"""

import statistics
import time
from typing import Any

import torch

from benchmarks.perf.settings import PerfSettings, load_average, machine
from saelens_aligned.sparse_ops import (
    dead_block_decode,
    dead_columns,
    dead_topk_pairs,
    sparse_decode,
)


def _timed(fn: Any, settings: PerfSettings) -> float:
    now = {"wall": time.perf_counter, "cpu": time.process_time}[settings.clock]
    start = now()
    fn()
    return now() - start


def auxk_crossover(
    settings: PerfSettings, dead_counts: tuple[int, ...]
) -> dict[str, Any]:
    """Median seconds of AuxK's reconstruction (forward, squared error, backward
    into the decoder and the coefficients), dense and sparse, per dead count."""
    gen = torch.Generator(device="cpu").manual_seed(0)
    batch, d_in, d_sae = settings.batch, settings.d_in, settings.d_sae
    k_aux = d_in // 2
    hidden_pre_BF = torch.randn(batch, d_sae, generator=gen)
    W_dec_FD = torch.randn(d_sae, d_in, generator=gen).requires_grad_(True)
    residual_BD = torch.randn(batch, d_in, generator=gen)
    medians: dict[str, dict[str, float]] = {}
    for num_dead in dead_counts:
        dead_F = torch.zeros(d_sae, dtype=torch.bool)
        dead_F[torch.randperm(d_sae, generator=gen)[:num_dead]] = True
        dead_cols_K = dead_columns(dead_F, num_dead)
        k = min(k_aux, num_dead)
        pairs, local_N = dead_topk_pairs(hidden_pre_BF, dead_cols_K, k)
        coefficients_N = torch.randn(pairs.rows_N.numel(), generator=gen)
        coefficients_N.requires_grad_(True)

        decodes = {
            "dense": lambda: dead_block_decode(
                W_dec_FD, dead_cols_K, pairs, local_N, coefficients_N
            ),
            "sparse": lambda: sparse_decode(W_dec_FD, pairs, coefficients_N),
        }
        samples: dict[str, list[float]] = {"dense": [], "sparse": []}
        for repeat in range(settings.warmup + settings.steps):
            for name, decode in decodes.items():
                W_dec_FD.grad = coefficients_N.grad = None
                seconds = _timed(
                    lambda d=decode: (d() - residual_BD).pow(2).sum().backward(),
                    settings,
                )
                if repeat >= settings.warmup:
                    samples[name].append(seconds)
        medians[str(num_dead)] = {
            name: statistics.median(s) for name, s in samples.items()
        }
    return {
        "measurement": "auxk_crossover",
        "family": "topk",
        "d_sae": d_sae,
        "k_aux": k_aux,
        "median_s": medians,
        "load_average": load_average(),
        "machine": machine(),
    }


def render_auxk(record: dict[str, Any]) -> list[list[str]]:
    """Rows of the crossover table: dead latents, per AuxK pair, dense s, sparse
    s, dense / sparse."""
    return [
        [
            dead,
            f"{int(dead) / record['k_aux']:.1f}",
            f"{m['dense']:.3f}",
            f"{m['sparse']:.3f}",
            f"{m['dense'] / m['sparse']:.2f}",
        ]
        for dead, m in record["median_s"].items()
    ]
