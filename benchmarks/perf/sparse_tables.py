"""The sparse-perf records and their tables: `render` turns the JSONL records of
`python -m benchmarks sparse-perf` (`benchmarks.perf.sparse_step`) into the
generated tables of docs/performance.md, one per measurement, the latest record
of each winning."""

import json
from pathlib import Path
from typing import Any


def read_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def github_table(header: list[str], rows: list[list[str]]) -> str:
    from tabulate import tabulate

    return tabulate(rows, headers=header, tablefmt="github")


def latest(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per measurement, family and d_sae: the last one written (a
    rerun of part of the plan replaces what it measured again)."""
    by_key = {(r["measurement"], r.get("family"), r["d_sae"]): r for r in records}
    return list(by_key.values())


def render(records: list[dict[str, Any]]) -> str:
    """The markdown tables of docs/performance.md, from `sparse-perf` records
    (`latest` of each)."""
    records = latest(records)
    steps = [r for r in records if r["measurement"] == "sparse_step"]
    rows = []
    for r in steps:
        ratios, stock = r["ratio_to_saelens_dense"], r["ratio_to_sparse_stock"]
        medians = r["median_step_s"]
        sparse_acts = ratios.get("saelens_sparse_activations")
        tied_vs_sparse_acts = (
            f"{medians['aligned_tied'] / medians['saelens_sparse_activations']:.2f}"
            if sparse_acts is not None
            else "n/a"
        )
        projected = stock.get("aligned_projected")
        rows.append(
            [
                r["family"],
                str(r["d_sae"]),
                f"{medians['saelens_dense']:.3f}",
                "n/a"
                if sparse_acts is None
                else f"{medians['saelens_sparse_activations']:.3f}",
                f"{medians['sparse_stock']:.3f}",
                f"{medians['aligned_tied']:.3f}",
                f"{ratios['aligned_tied']:.2f}",
                tied_vs_sparse_acts,
                f"{stock['aligned_tied']:.3f}",
                "n/a" if projected is None else f"{projected:.3f}",
            ]
        )
    out = [
        github_table(
            [
                "family",
                "d_sae",
                "SAELens dense s/step",
                "SAELens sparse decode s/step",
                "our stock sparse s/step",
                "aligned `tied` sparse s/step",
                "`tied` / SAELens dense",
                "`tied` / SAELens sparse decode",
                "`tied` / stock sparse",
                "`projected` / stock sparse",
            ],
            rows,
        )
    ]
    memory = [r for r in records if r["measurement"] == "sparse_memory"]
    if memory:
        out.append(
            github_table(
                [
                    "d_sae",
                    "SAELens dense peak MiB",
                    "aligned `tied` sparse peak MiB",
                    "`tied` / SAELens dense",
                    "stock sparse / SAELens dense",
                ],
                [
                    [
                        str(r["d_sae"]),
                        f"{r['peak_memory_bytes']['saelens_dense'] / 2**20:.0f}",
                        f"{r['peak_memory_bytes']['aligned_tied'] / 2**20:.0f}",
                        f"{r['ratio_to_saelens_dense']['aligned_tied']:.2f}",
                        f"{r['ratio_to_saelens_dense']['sparse_stock']:.2f}",
                    ]
                    for r in memory
                ],
            )
        )
    out.extend(_autocast_and_loop_tables(records))
    scaling = [r for r in records if r["measurement"] == "sparse_scaling"]
    if scaling:
        out.append(
            github_table(
                [
                    "d_sae",
                    "encoder GEMM s",
                    "stock sparse s/step",
                    "aligned `tied` sparse s/step",
                    "GEMM share (stock)",
                    "GEMM share (`tied`)",
                    "GEMM into a reused output s",
                    "its share (stock)",
                ],
                [
                    [
                        str(r["d_sae"]),
                        f"{r['median_step_s']['encoder_gemm']:.3f}",
                        f"{r['median_step_s']['sparse_stock']:.3f}",
                        f"{r['median_step_s']['aligned_tied']:.3f}",
                        f"{r['encoder_gemm_share']['sparse_stock']:.2f}",
                        f"{r['encoder_gemm_share']['aligned_tied']:.2f}",
                        *(
                            (
                                f"{r['median_step_s']['encoder_gemm_reused']:.3f}",
                                f"{r['encoder_gemm_reused_share']['sparse_stock']:.2f}",
                            )
                            if "encoder_gemm_reused" in r["median_step_s"]
                            else ("n/a", "n/a")
                        ),
                    ]
                    for r in scaling
                ],
            )
        )
    auxk = [r for r in records if r["measurement"] == "auxk_crossover"]
    if auxk:
        from benchmarks.perf.sparse_auxk import render_auxk
    for r in auxk:
        out.append(
            github_table(
                [
                    "dead latents",
                    "per AuxK pair",
                    "dense s",
                    "sparse s",
                    "dense / sparse",
                ],
                render_auxk(r),
            )
        )
    return "\n\n".join(out) + "\n"


AUTOCAST_COLUMNS = (
    "d_sae | stock sparse fp32 s/step | stock sparse autocast s/step | "
    "`tied` autocast s/step | stock autocast / fp32 | `tied` autocast / fp32 | "
    "`tied` autocast / SAELens dense fp32 | `tied` / stock (autocast)"
)
LOOP_MEMORY_COLUMNS = (
    "d_sae | loop steps | SAELens dense loop peak MiB | stock sparse loop peak MiB | "
    "`tied` sparse loop peak MiB | `tied` / SAELens dense"
)


def _autocast_and_loop_tables(records: list[dict[str, Any]]) -> list[str]:
    out = []
    autocast = [
        r
        for r in records
        if r["measurement"] == "sparse_step"
        and "sparse_stock_autocast" in r["median_step_s"]
    ]
    if autocast:
        rows = []
        for r in autocast:
            m = r["median_step_s"]
            rows.append(
                [
                    str(r["d_sae"]),
                    f"{m['sparse_stock']:.3f}",
                    f"{m['sparse_stock_autocast']:.3f}",
                    f"{m['aligned_tied_autocast']:.3f}",
                    f"{m['sparse_stock_autocast'] / m['sparse_stock']:.2f}",
                    f"{m['aligned_tied_autocast'] / m['aligned_tied']:.2f}",
                    f"{m['aligned_tied_autocast'] / m['saelens_dense']:.3f}",
                    f"{m['aligned_tied_autocast'] / m['sparse_stock_autocast']:.3f}",
                ]
            )
        out.append(github_table(AUTOCAST_COLUMNS.split(" | "), rows))
    loop = [r for r in records if r["measurement"] == "sparse_loop_memory"]
    if loop:
        out.append(
            github_table(
                LOOP_MEMORY_COLUMNS.split(" | "),
                [
                    [
                        str(r["d_sae"]),
                        str(r["steps"]),
                        # In the order the record lists its arms, as the columns.
                        *(
                            f"{peak / 2**20:.0f}"
                            for peak in r["peak_memory_bytes"].values()
                        ),
                        f"{r['peak_memory_bytes']['aligned_tied'] / r['peak_memory_bytes']['saelens_dense']:.2f}",
                    ]
                    for r in loop
                ],
            )
        )
    return out
