"""Sweep records in `benchmarks.records.layout`' layout for the benchmark's tests."""

from benchmarks.records import layout


def make_record(
    architecture: str,
    sparsity_value: float,
    seed: int,
    alignment: str | None = None,
    base_architecture: str | None = None,
    sparsity_param: str = "k",
    d_sae: int = 64,
    init_from: str | None = None,
    lr: float | None = None,
    **metrics: float,
) -> dict:
    """A run record in records.py's layout, metrics given by their flat names."""
    base = base_architecture or architecture
    label = architecture
    if alignment:
        label = f"{architecture}[{alignment}]"
    elif init_from:
        label = f"{architecture}[init={init_from}]"
    form = f"-{alignment}" if alignment else (f"-init{init_from}" if init_from else "")
    point_id = f"{architecture}{form}-{sparsity_param}{sparsity_value:g}-d{d_sae}"
    if lr is not None:
        point_id += f"-lr{lr:g}"
    groups: dict = {}
    for name, value in metrics.items():
        group, key = layout.FLAT_METRICS[name]
        groups.setdefault(group, {})[key] = value
    return {
        "eval_type_id": layout.EVAL_TYPE_ID,
        "eval_config": {
            "run": {
                "architecture": architecture,
                "alignment": alignment,
                "init_from": init_from,
                "base_architecture": base,
                "label": label,
                "sparsity_param": sparsity_param,
                "sparsity_value": sparsity_value,
                "d_sae": d_sae,
                "seed": seed,
                "lr": lr,
                "run_id": f"{point_id}-s{seed}",
                "point_id": point_id,
            }
        },
        "eval_result_metrics": groups,
        "eval_result_unstructured": {},
    }


def make_stability(
    run: dict,
    shared: list[float],
    alive: list[float] | None = None,
    chance: float | None = 0.01,
) -> dict:
    """A stability record for the point of `run`: per-pair decoder fractions over
    all latents (`shared`) and over alive latents (`alive`)."""
    info = {
        k: v for k, v in layout.run_info(run).items() if k not in ("seed", "run_id")
    }
    details = [
        {
            "seeds": [0, i + 1],
            "shared_fraction_decoder": f,
            "shared_fraction_decoder_alive": None if alive is None else alive[i],
            "shared_fraction_enc_dec": None,
            "mean_matched_decoder_cos": 0.5,
        }
        for i, f in enumerate(shared)
    ]
    headline = shared if alive is None else alive
    return {
        "eval_type_id": layout.STABILITY_TYPE_ID,
        "eval_config": {"point": info, "threshold": 0.7, "method": "hungarian"},
        "eval_result_metrics": {
            "stability": {
                "shared_fraction_mean": sum(headline) / len(headline),
                "shared_fraction_min": min(headline),
                "shared_fraction_max": max(headline),
                "mean_matched_decoder_cos": 0.5,
                "n_pairs": len(shared),
                "chance_shared_fraction_decoder": chance,
                "chance_shared_fraction_enc_dec": None,
            }
        },
        "eval_result_details": details,
        "eval_result_unstructured": {},
    }


def sweep(
    aligned_ev: float,
    aligned_dead: float,
    base_dead: float = 0.3,
    form: str = "tied",
    architecture: str = "topk",
    spread: float = 0.01,
    ks: tuple[int, ...] = (8, 16, 32),
    seeds: int = 3,
    ce: bool = True,
    control_ev: float | None = None,
    control_dead: float | None = None,
    control_init: str = "projected",
) -> list[dict]:
    """Stock base and aligned runs (and, with `control_ev`, a control started from
    `control_init`: the fair control by default) at the same k, `seeds` seeds,
    L0 = k, EV rising with k; the aligned EV offset by `aligned_ev`, the
    control's by `control_ev`. A seed's jitter is the same in every arm (arms
    share seeds), so paired differences are exact."""
    jitters = (-spread, 0.0, spread, -spread / 2, spread / 2)[:seeds]
    arms = [(architecture, None, None, 0.0, base_dead)]
    arms.append((f"aligned_{architecture}", form, None, aligned_ev, aligned_dead))
    if control_ev is not None:
        dead = base_dead if control_dead is None else control_dead
        arms.append((architecture, None, control_init, control_ev, dead))
    runs = []
    for i, k in enumerate(ks):
        for seed, jitter in enumerate(jitters):
            for arch, alignment, init_from, offset, dead in arms:
                ev = 0.5 + 0.1 * i + jitter + offset
                extra = {"ce_loss_score": ev + 0.2} if ce else {}
                runs.append(
                    make_record(
                        arch,
                        k,
                        seed,
                        alignment,
                        architecture,
                        init_from=init_from,
                        explained_variance=ev,
                        dead_fraction=dead,
                        l0=float(k),
                        l2_ratio=0.8,
                        **extra,
                    )
                )
    return runs


def collapse(runs: list[dict], label: str, k: float, seeds=(0, 1, 2)) -> None:
    """Make the seeds of one point degenerate (SAELens' standard l1=128 numbers)."""
    for r in runs:
        info = layout.run_info(r)
        if (info["label"], info["sparsity_value"]) == (label, k) and info[
            "seed"
        ] in seeds:
            r["eval_result_metrics"]["shrinkage"]["l2_ratio"] = 0.065
            r["eval_result_metrics"]["model_performance_preservation"] = {
                "ce_loss_score": -0.41
            }
            group, key = layout.FLAT_METRICS["explained_variance"]
            r["eval_result_metrics"][group] = {key: -0.5}
