"""SAEBench's sae-probes sparse-probing eval on an SAE of a local model, offline.

sae-probes (Kantamneni et al. 2025, "Are Sparse Autoencoders Useful?") ships 113
labelled binary-classification datasets in its wheel. For each it caches the model's
residual stream at the last token of every prompt, trains k-sparse logistic probes
on the k SAE latents whose class means differ most, and beside them a dense probe on
the residual stream itself (the "llm" baseline the SAE is measured against).

`run_sae_probes` calls SAEBench's own
`sae_bench.evals.sparse_probing_sae_probes.main.run_eval` unchanged and returns its
metrics. For the duration of the call only:

- sae-probes loads the model by name with `HookedTransformer`: it is handed the
  already-built one (with sae-probes' `max_seq_len` and batch size);
- every file goes under `work_dir` (SAEBench and sae-probes default to `./artifacts`
  and `./results`): model activations are cached there, keyed (by sae-probes) on
  model and hook, and reused by every later SAE, as are the baseline probes;
- with `max_examples` set, each dataset is cut to a class-balanced subsample, which
  sae-probes reads in place of the wheel's file; sae-probes trains on
  `min(size - 100, 1024)` prompts and tests on the rest, with `size` read from its
  `DATASET_SIZES` tables, which `max_train` lowers to `max_train + 100`;
- the tokenizer sides sae-probes sets, global RNGs and grad mode are restored.
"""

import contextlib
import difflib
import importlib
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from sae_lens.saes.sae import SAE

from saelens_aligned.pipeline.probing_results import (
    ProbeMetrics,
    SaeProbesDatasetResult,
    SaeProbesResult,
)
from saelens_aligned.pipeline.sae_probes_data import (
    read_dataset,
    write_subsamples,
)
from saelens_aligned.pipeline.saebench_redirects import (
    SAE_RELEASE,
    ProvidedModel,
    as_transformer_lens_hook,
    patched,
    prepare_sae,
    seeded,
    working_directory,
)
from saelens_aligned.pipeline.transformer_lens_view import hook_layer

SAEBENCH_CUSTOM_SAE_ID = "custom_sae"
"""The id SAEBench gives an SAE passed as an object (its results are filed under
`{release}_{id}`)."""

MIN_EXAMPLES = 200
"""Smallest `max_examples`: sae-probes keeps 100 rows of each dataset out of
training (it tests on 99 of them)."""

MAX_TRAIN, MAX_ROWS = 1024, 5000
"""sae-probes trains on at most 1024 prompts and reads at most 5000 of a dataset."""

BINARIZE_UNSUPPORTED = (
    "SAEBench reads '<hook>_<reg_type>.json', sae-probes then writes "
    "'<hook>_<reg_type>_binarized.json' and no metrics would be found; use False"
)


@dataclass(frozen=True)
class SaeProbesSettings:
    """SAEBench `SparseProbingSaeProbesEvalConfig` fields, with its defaults, plus
    the size of each dataset and prompt. `SaeProbesSettings()` is SAEBench's default
    eval (all 113 datasets, full size); `.cpu()` and `.tiny()` shrink it.

    Attributes:
        dataset_names: sae-probes datasets (`sae_probes.DATASETS`, e.g.
            "113_movie_sent"); None means all of them, SAEBench's default.
        ks: Numbers of SAE latents each sparse probe may read.
        reg_type: Penalty of the sparse probes, "l1" or "l2".
        setting: sae-probes' data-balance setting; SAEBench aggregates only
            "normal" (balanced classes, all data).
        binarize: Probe on whether latents fire rather than on their values.
            SAEBench's aggregation misses sae-probes' files for it (their names
            gain "_binarized"), so only False is accepted.
        random_seed: sae-probes' train/test split and probe seeds.
        include_llm_baseline: Also probe the residual stream itself
            (sae-probes `run_baseline_evals`), the reference for the SAE's numbers.
        baseline_method: The baseline classifier ("logreg", "pca", "knn",
            "xgboost", "mlp").
        max_examples: Cut each dataset to this many prompts, half of each class,
            chosen with `SUBSAMPLE_SEED`; None keeps them all (up to 5,000).
        max_train: Train probes on at most this many prompts, testing on all the
            others (sae-probes: `min(n - 100, 1024)`, so at most 99 test prompts
            when n <= 1124); more test prompts for the same model passes.
        max_seq_len: sae-probes truncates prompts to their last `max_seq_len`
            tokens (its default, 1024). Code and some news prompts run to
            thousands of tokens; the probes read only the last token.
        llm_batch_size: Prompts per model pass (speed only: padding is on the
            right and attention causal, so the last token does not see it).
    """

    dataset_names: tuple[str, ...] | None = None
    ks: tuple[int, ...] = (1, 2, 5)
    reg_type: str = "l1"
    setting: str = "normal"
    binarize: bool = False
    random_seed: int = 42
    include_llm_baseline: bool = True
    baseline_method: str = "logreg"
    max_examples: int | None = None
    max_train: int | None = None
    max_seq_len: int = 1024
    llm_batch_size: int = 32

    def __post_init__(self) -> None:
        positive = ("max_train", "max_seq_len", "llm_batch_size")
        values = {name: getattr(self, name) for name in positive}
        too_small = {name for name, v in values.items() if v is not None and v < 1}
        problems = [
            f"{name}={getattr(self, name)!r}: {fix}"
            for name, ok, fix in (
                (
                    "setting",
                    self.setting == "normal",
                    "SAEBench aggregates only 'normal'",
                ),
                ("reg_type", self.reg_type in ("l1", "l2"), "use 'l1' or 'l2'"),
                ("binarize", not self.binarize, BINARIZE_UNSUPPORTED),
                ("ks", bool(self.ks) and min(self.ks) >= 1, "use e.g. (1, 2, 5)"),
                (
                    "max_examples",
                    self.max_examples is None or self.max_examples >= MIN_EXAMPLES,
                    f"sae-probes tests on 99 rows; use >= {MIN_EXAMPLES} or None",
                ),
                ("dataset_names", self.dataset_names != (), "name some, or None"),
                *((name, name not in too_small, "use >= 1") for name in positive),
            )
            if not ok
        ]
        if problems:
            raise ValueError("SaeProbesSettings: " + "; ".join(problems) + ".")

    @classmethod
    def cpu(cls, **overrides: Any) -> "SaeProbesSettings":
        """Eight datasets of different kinds, 600 prompts each (300 to train, 299
        to test), cut to their last 128 tokens; SAEBench's ks and probes.

        - 113_movie_sent: sentiment of a movie-review sentence;
        - 96_spam_is, 95_toxic_is: SMS spam, toxic chat requests;
        - 161_agnews_0, 163_agnews_2: news topic (AG News, one topic vs the rest);
        - 158_code_C, 159_code_Python: language of a code snippet;
        - 5_hist_fig_ismale: a fact about a named person (6-token prompts).

        Sentiment, spam and toxicity are the concepts sparse probes are usually
        wanted for; topic and language are broad, easy for a dense probe; the
        entity fact must be recalled, so it separates layers (the residual
        baseline is at chance at layer 3 of SmolLM2-135M, 0.54). Measured on 2
        CPU cores, 4-block model, d_sae 1152: the first call 116 s, nearly all
        model passes over the long news and code prompts; a later SAE in the
        same work_dir 2 s. At 256 tokens the first call took over 3x as long for
        the same baseline accuracy (mean 0.831 vs 0.834 at 128).
        """
        datasets = (
            *("113_movie_sent", "96_spam_is", "95_toxic_is", "5_hist_fig_ismale"),
            *("161_agnews_0", "163_agnews_2", "158_code_C", "159_code_Python"),
        )
        fields_ = dict(
            dataset_names=datasets, max_examples=600, max_train=300, max_seq_len=128
        )
        return cls(**{**fields_, **overrides})

    @classmethod
    def tiny(cls, **overrides: Any) -> "SaeProbesSettings":
        """For tests: two short-prompt datasets of 240 prompts (130 to train, 109 to
        test; sae-probes cross-validates 6-fold below 128), k of 1 and 2."""
        fields_ = dict(
            dataset_names=("113_movie_sent", "96_spam_is"),
            ks=(1, 2),
            max_examples=240,
            max_train=130,
            max_seq_len=64,
        )
        return cls(**{**fields_, **overrides})

    def resolved_dataset_names(self) -> tuple[str, ...]:
        """`dataset_names`, checked against the sae-probes wheel; all when None."""
        from sae_probes.utils_data import get_numbered_binary_tags

        known = get_numbered_binary_tags()
        if self.dataset_names is None:
            return tuple(known)
        unknown = [name for name in self.dataset_names if name not in known]
        if unknown:
            hints = [
                f"{name!r} (did you mean {close[0]!r}?)"
                if (close := difflib.get_close_matches(name, known, n=1))
                else repr(name)
                for name in unknown
            ]
            raise ValueError(
                f"SaeProbesSettings.dataset_names: no binary dataset {', '.join(hints)} "
                f"in the sae-probes wheel; use names from sae_probes.DATASETS "
                f"({len(known)} of them, e.g. {known[0]!r}), or None for all."
            )
        return tuple(self.dataset_names)

    def data_key(self) -> str:
        """What model activations depend on besides model and hook (sae-probes
        keys its cache on those): the prompts and how they are truncated."""
        return f"examples-{self.max_examples or 'all'}-seq{self.max_seq_len}"

    def eval_config(
        self, model_name: str, results_path: Path, model_cache_path: Path
    ) -> Any:
        """The SAEBench `SparseProbingSaeProbesEvalConfig` these settings stand for."""
        from sae_bench.evals.sparse_probing_sae_probes.eval_config import (
            SparseProbingSaeProbesEvalConfig as Config,
        )

        shared = {f.name for f in fields(Config)} & {f.name for f in fields(self)}
        values = {
            name: getattr(self, name) for name in shared - {"dataset_names", "ks"}
        }
        return Config(
            **values,
            dataset_names=list(self.resolved_dataset_names()),
            ks=list(self.ks),
            model_name=model_name,
            results_path=str(results_path),
            model_cache_path=str(model_cache_path),
        )


def _check_residual_hook(sae: SAE[Any]) -> None:
    name = str(sae.cfg.metadata.hook_name)
    try:
        hook = as_transformer_lens_hook(name)
    except ValueError:
        hook = name
    if hook_layer(hook) is None or not hook.endswith("hook_resid_post"):
        raise ValueError(
            f"sae.cfg.metadata.hook_name is {name!r}: sae-probes probes the residual "
            "stream after a block; evaluate an SAE hooked at model.layers.N "
            "(TransformerLens: blocks.N.hook_resid_post)."
        )


@contextlib.contextmanager
def _tokenizer_sides_kept(tokenizer: Any) -> Iterator[None]:
    """sae-probes sets the model's tokenizer to truncate left and pad right."""
    sides = (tokenizer.padding_side, tokenizer.truncation_side)
    try:
        yield
    finally:
        tokenizer.padding_side, tokenizer.truncation_side = sides


@contextlib.contextmanager
def _sae_probes_redirected(
    model: Any,
    work_dir: Path,
    settings: SaeProbesSettings,
    data_root: Path | None,
    sizes: dict[str, int],
) -> Iterator[None]:
    """sae-probes, for the duration of the block, takes `model` as its model, reads
    the datasets under `data_root` when given, and sees their sizes as `sizes`."""
    gma, gsa, run_baselines, run_sae_evals, utils_data = (
        importlib.import_module(f"sae_probes.{name}")
        for name in (
            "generate_model_activations",
            "generate_sae_activations",
            "run_baselines",
            "run_sae_evals",
            "utils_data",
        )
    )
    ensure = partial(
        gma.ensure_dataset_activations,
        model=model,
        max_seq_len=settings.max_seq_len,
        batch_size=settings.llm_batch_size,
    )
    with contextlib.ExitStack() as stack:
        enter = stack.enter_context
        enter(patched(gma, "HookedTransformer", ProvidedModel(model)))
        for module in (run_sae_evals, run_baselines, utils_data):
            enter(patched(module, "ensure_dataset_activations", ensure))
        if data_root is not None:
            enter(patched(gma, "DATA_PATH", data_root))
            reader = partial(
                read_dataset, data_root, utils_data.read_numbered_dataset_df
            )
            enter(patched(utils_data, "read_numbered_dataset_df", reader))
        for module in (gsa, run_baselines, run_sae_evals):
            seen = {**module.DATASET_SIZES, **sizes}
            enter(patched(module, "DATASET_SIZES", seen))
        enter(_tokenizer_sides_kept(model.tokenizer))
        enter(working_directory(work_dir))
        yield


def _metrics(values: dict[str, Any] | None, k: int | None = None) -> ProbeMetrics:
    values = values or {}
    names = ("test_accuracy", "test_auc", "test_f1")
    return ProbeMetrics(k, *(float(values.get(name, np.nan)) for name in names))


def _llm(values: dict[str, Any]) -> ProbeMetrics | None:
    """The baseline's metrics from SAEBench's `llm_`-prefixed fields."""
    if values.get("llm_test_accuracy") is None:
        return None
    return _metrics({key.removeprefix("llm_"): v for key, v in values.items()})


def run_sae_probes(
    sae: SAE[Any],
    hooked_model: Any,
    settings: SaeProbesSettings = SaeProbesSettings(),
    work_dir: str | Path | None = None,
) -> SaeProbesResult:
    """SAEBench's sae-probes sparse-probing eval of `sae` on `hooked_model`, offline.

    Args:
        sae: A SAELens SAE trained on the residual stream after a block, hooked as
            `model.layers.N` or `blocks.N.hook_resid_post`. Not modified.
        hooked_model: A `HookedTransformer` of the same model, e.g.
            `transformer_lens_view.load_hooked_transformer(model_dir,
            n_blocks=N + 1)` (no later block is read).
        settings: Datasets, their size, and SAEBench's probe settings.
        work_dir: Where every file goes. Model activations and baseline results
            cached there are reused by later calls with the same model, hook and
            data settings; the SAE's own probes are redone on every call. A
            temporary directory, removed afterwards, when None.

    Raises:
        ValueError: Before any model pass, for an unknown dataset, an SAE not on
            the residual stream, or one that does not fit the model.
    """
    from sae_bench.evals.sparse_probing_sae_probes.main import run_eval

    if work_dir is None:
        with tempfile.TemporaryDirectory(prefix="sae-probes-") as tmp:
            return run_sae_probes(sae, hooked_model, settings, tmp)
    work_dir = Path(work_dir).resolve()

    datasets = settings.resolved_dataset_names()
    _check_residual_hook(sae)
    model_name = str(hooked_model.cfg.model_name)
    prepared = prepare_sae(sae, model_name)
    hook = str(prepared.cfg.hook_name)  # type: ignore[attr-defined]
    layer = int(prepared.cfg.hook_layer)  # type: ignore[attr-defined]
    if layer >= hooked_model.cfg.n_layers or sae.cfg.d_in != hooked_model.cfg.d_model:
        raise ValueError(
            f"The SAE reads {hook} (d_in {sae.cfg.d_in}); the model has "
            f"{hooked_model.cfg.n_layers} blocks of d_model "
            f"{hooked_model.cfg.d_model}: pass the model the SAE was trained on."
        )
    work_dir.mkdir(parents=True, exist_ok=True)

    key = settings.data_key()
    model_cache = work_dir / "model_activations" / key
    train = settings.max_train or "all"
    results_path = (
        work_dir / "sae_probes" / f"{key}-train{train}-seed{settings.random_seed}"
    )
    config = settings.eval_config(model_name, results_path, model_cache)
    data_root = None
    if settings.max_examples is not None:
        data_root = work_dir / "data" / key
        sizes = write_subsamples(datasets, settings.max_examples, data_root)
    else:
        from sae_probes.utils_data import get_dataset_sizes

        sizes = {name: get_dataset_sizes()[name] for name in datasets}
    seen = {
        name: min(size, (settings.max_train or size) + 100)
        for name, size in sizes.items()
    }

    acts_dir = model_cache / f"model_activations_{model_name}"
    activations_reused = all(
        (acts_dir / f"{name}_{hook}.pt").exists() for name in datasets
    )
    baseline_dir = results_path / f"baseline_results_{model_name}" / "normal_setting"
    baseline_reused = settings.include_llm_baseline and all(
        (baseline_dir / f"{name}_{hook}_{settings.baseline_method}.json").exists()
        for name in datasets
    )
    # sae-probes skips datasets whose SAE results exist: redo them for this SAE.
    shutil.rmtree(results_path / f"{SAE_RELEASE}_{SAEBENCH_CUSTOM_SAE_ID}", True)
    output_dir = work_dir / "results"
    device = str(next(hooked_model.parameters()).device)

    start = time.perf_counter()
    with (
        seeded(settings.random_seed),
        _sae_probes_redirected(hooked_model, work_dir, settings, data_root, seen),
    ):
        results = run_eval(
            config, [(SAE_RELEASE, prepared)], device, str(output_dir), True
        )
    seconds = time.perf_counter() - start

    output = results[f"{SAE_RELEASE}_{SAEBENCH_CUSTOM_SAE_ID}"]
    by_name = {row["dataset_name"]: row for row in output["eval_result_details"]}
    if set(by_name) != set(datasets):
        missing = sorted(set(datasets) - set(by_name))
        raise RuntimeError(f"SAEBench returned no results for {missing}.")
    ks = sorted(settings.ks)
    details = tuple(
        SaeProbesDatasetResult(
            dataset_name=name,
            n_examples=sizes[name],
            n_train=min(seen[name] - 100, MAX_TRAIN),
            n_test=min(sizes[name], MAX_ROWS) - min(seen[name] - 100, MAX_TRAIN) - 1,
            sae=tuple(
                _metrics((by_name[name]["sae_metrics_by_k"] or {}).get(k), k)
                for k in ks
            ),
            llm=_llm(by_name[name]),
        )
        for name in datasets
    )
    return SaeProbesResult(
        sae=tuple(_metrics((output["sae_metrics_by_k"] or {}).get(k), k) for k in ks),
        llm=_llm(output["eval_result_metrics"]["llm"]),
        datasets=datasets,
        details=details,
        seconds=seconds,
        model_activations_reused=activations_reused,
        baseline_reused=bool(baseline_reused),
        settings=asdict(replace(settings, dataset_names=datasets)),
    )
