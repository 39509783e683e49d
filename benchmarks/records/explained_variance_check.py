"""Checks a recovered explained variance against a direct computation, on the
shipped release SAEs (the only SAEs of the committed records whose weights are
committed too).

    python -m benchmarks.records.explained_variance_check [LAYER ...]

For each layer: the shipped file expanded as the release build evaluated it,
its evaluation tokens replayed (`saelens_aligned.pipeline.eval_moments`) with
its reconstructions, and printed: SAEBench's recorded value against the one the
replayed tokens give (the same tokens reproduce it), the record's value about
the mean against a direct float64 computation (SAEBench's weighting), SAELens'
token-weighted value, and whether the committed moments are the replayed ones.
It runs the model to the hooked layer over the evaluation set once per layer.
"""

import argparse
import tempfile
from pathlib import Path

from benchmarks.records.explained_variance import read_moments
from benchmarks.records.layout import read_record, record_path
from benchmarks.release.spec import RELEASE, ReleasePaths, compact_file, shipped_dir
from saelens_aligned.explained_variance import (
    explained_variance,
    saebench_explained_variance,
)
from saelens_aligned.pipeline.eval_moments import RECORD_KEY, eval_set_moments


def check_layer(layer: int, paths: ReleasePaths) -> dict[str, float]:
    """The numbers above for one shipped layer."""
    import torch

    from saelens_aligned.io.compact import expand_compact
    from saelens_aligned.io.sae_dirs import load_sae_dir
    from saelens_aligned.pipeline.evaluation import (
        at_hook,
        default_tokenization,
        eval_activation_store,
        eval_set_of,
        prepare_for_saebench,
    )
    from saelens_aligned.pipeline.source import load_source_model, resolve_source

    config = RELEASE.sweep(layer)
    record = read_record(
        record_path(
            shipped_dir(RELEASE, layer, paths), RELEASE.aligned_run(layer).run_id
        )
    )
    resolved = resolve_source(config.source())
    model = load_source_model(resolved)
    with tempfile.TemporaryDirectory() as tmp:
        compact = compact_file(RELEASE, layer, paths)
        sae = load_sae_dir(expand_compact(compact, Path(tmp) / "sae"))
    sae = at_hook(sae, resolved.source.hook)
    default_tokenization(sae)
    eval_set = eval_set_of(
        resolved, config.eval, bool(sae.cfg.metadata.prepend_bos), "eval"
    )
    store = eval_activation_store(resolved, model, sae, config.eval)
    with torch.no_grad():
        moments, direct = eval_set_moments(
            eval_set, store, model, prepare_for_saebench(sae, resolved.model_name)
        )
    quality = record["eval_result_metrics"]["reconstruction_quality"]
    stored = read_moments()[eval_set.key]
    return {
        "saebench_recorded": quality["explained_variance"],
        "saebench_replayed": saebench_explained_variance(
            direct.residual, moments.mean_squared_norm, moments.d_in
        ),
        "about_mean_recorded": quality[RECORD_KEY],
        "about_mean_direct": explained_variance(
            direct.residual, moments.mean_squared_norm, moments.squared_norm_of_mean
        ),
        "about_mean_token_weighted": explained_variance(
            direct.token_residual,
            moments.token_mean_squared_norm,
            moments.token_squared_norm_of_mean,
        ),
        "committed_moments_differ_by": max(
            abs(stored.mean_squared_norm - moments.mean_squared_norm),
            abs(stored.squared_norm_of_mean - moments.squared_norm_of_mean),
        ),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.records.explained_variance_check",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("layers", nargs="*", type=int, default=list(RELEASE.layers))
    args = parser.parse_args(argv)
    for layer in args.layers:
        numbers = check_layer(layer, ReleasePaths())
        print(
            f"layer {layer}: " + ", ".join(f"{k} {v:.9g}" for k, v in numbers.items())
        )


if __name__ == "__main__":
    main()
