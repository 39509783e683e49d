"""SAEBench's sparse probing and TPP evals on an SAE of a local model, offline.

Sparse probing (Gurnee et al. 2023, as packaged by SAEBench) trains one-vs-rest
probes on the mean-pooled SAE latents of labelled text, on all latents and on the
top k by class-mean difference, beside the same probes on the residual stream (the
baseline). TPP (targeted probe perturbation; Karvonen et al. 2024) trains a
residual-stream probe per class, zero-ablates the n SAE latents most attributed to
that class, and measures how much the class's own probe accuracy drops against the
other classes' (higher is better: the ablation is specific).

`run_sparse_probing` and `run_tpp` call SAEBench's own `run_eval` of
`sae_bench.evals.sparse_probing.main` and `sae_bench.evals.scr_and_tpp.main`
unchanged. For the duration of the call only:

- `dataset_utils.get_multi_label_train_test_data`, `dataset_info.
  chosen_classes_per_dataset` and TPP's `COLUMN2_VALS_LOOKUP` (looked up at call
  time in the TPP main module) also know the `local/...` sets of `labelled_text`;
  every other name still goes to SAEBench's hub loaders;
- the model load returns the given `HookedTransformer` (as `absorption` does);
- SAEBench's `./artifacts` and result JSONs go under `work_dir`: model activations
  (and TPP's residual probes), which depend only on model, hook, data and probe
  settings, are saved once per settings key and reused by later SAEs;
- global RNGs are seeded from `random_seed` and restored, as is grad mode;
- SAEBench's two sklearn probe helpers get their own jaxtyping dimension scope
  (`saebench_redirects.sklearn_probes_scoped`: without it every top-k probe fails
  with the installed jaxtyping and beartype).

SCR (spurious correlation removal, the other half of `scr_and_tpp`) stays off
(`perform_scr=False`): it needs two correlated labels on every text (profession and
gender in bias in bios, category and rating in Amazon reviews), and no local set has
such a pair.
"""

import contextlib
import hashlib
import json
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sae_lens.saes.sae import SAE

from saelens_aligned.pipeline import labelled_text
from saelens_aligned.pipeline.probing_results import SparseProbingResult, TppResult
from saelens_aligned.pipeline.saebench_redirects import (
    SAE_RELEASE,
    ProvidedModel,
    as_transformer_lens_hook,
    patched,
    prepare_sae,
    seeded,
    sklearn_probes_scoped,
    working_directory,
)
from saelens_aligned.pipeline.transformer_lens_view import hook_layer

SPARSE_PROBING_K = frozenset({1, 2, 5, 10, 20, 50, 100})
TPP_N = frozenset({2, 5, 10, 20, 50, 100, 500})
"""The k / n values SAEBench's output schemas have fields for."""
CPU_DATASETS = ("local/agnews", "local/code", "local/brown_genres")


@dataclass(frozen=True)
class SparseProbingSettings:
    """SAEBench `SparseProbingEvalConfig` fields, with its defaults (its hub
    datasets: `SparseProbingSettings()` needs the hub). `.cpu()` and `.tiny()`
    use the local sets.

    Attributes:
        dataset_names: SAEBench hub names or `labelled_text` local names.
        probe_train_set_size: Texts per one-vs-rest probe: half of it per class.
        probe_test_set_size: Likewise for the test texts.
        context_length: Tokens read per text (truncated / padded).
        k_values: Sizes of the top-k latent probes (each in SAEBench's schema:
            1, 2, 5, 10, 20, 50, 100).
        random_seed: Data sampling, probe initialisation, global RNGs.
        llm_batch_size: Texts per model pass.
        sae_batch_size: Texts per SAE encode.
    """

    dataset_names: tuple[str, ...] = (
        "LabHC/bias_in_bios_class_set1",
        "LabHC/bias_in_bios_class_set2",
        "LabHC/bias_in_bios_class_set3",
        "canrager/amazon_reviews_mcauley_1and5",
        "canrager/amazon_reviews_mcauley_1and5_sentiment",
        "codeparrot/github-code",
        "fancyzhx/ag_news",
        "Helsinki-NLP/europarl",
    )
    probe_train_set_size: int = 4000
    probe_test_set_size: int = 1000
    context_length: int = 128
    k_values: tuple[int, ...] = (1, 2, 5)
    random_seed: int = 42
    llm_batch_size: int = 32
    sae_batch_size: int = 125

    @classmethod
    def cpu(cls, **overrides: Any) -> "SparseProbingSettings":
        """The three local sets (Brown skipped when absent), 100 train and 50 test
        texts a class of SAEBench's 128 tokens, its k values. Measured on 2 cores,
        a d_sae 1,152 SAE at layer 3: 53 s first (model passes), 5 s for a later
        SAE reusing the activations (465 MB in work_dir)."""
        values: dict[str, Any] = dict(
            dataset_names=CPU_DATASETS,
            probe_train_set_size=200,
            probe_test_set_size=100,
        )
        return cls(**{**values, **overrides})

    @classmethod
    def tiny(cls, **overrides: Any) -> "SparseProbingSettings":
        """For tests: two local sets, 20 / 10 texts a class of 32 tokens."""
        values: dict[str, Any] = dict(
            dataset_names=("local/agnews", "local/code"),
            probe_train_set_size=40,
            probe_test_set_size=20,
            context_length=32,
            k_values=(1, 2),
        )
        return cls(**{**values, **overrides})

    def eval_config(self, model_name: str, llm_dtype: str) -> Any:
        from sae_bench.evals.sparse_probing.eval_config import SparseProbingEvalConfig

        values = asdict(self)
        values.update(
            dataset_names=list(self.dataset_names), k_values=list(self.k_values)
        )
        return SparseProbingEvalConfig(
            model_name=model_name, llm_dtype=llm_dtype, **values
        )


@dataclass(frozen=True)
class TppSettings:
    """SAEBench `ScrAndTppEvalConfig` fields of TPP (`perform_scr=False`), with its
    defaults (its hub datasets). `.cpu()` and `.tiny()` use the local sets.

    Attributes:
        dataset_names: SAEBench hub names or `labelled_text` local names; every
            class of a set is ablated in turn.
        train_set_size: Texts per residual probe: half of it per class.
        test_set_size: Likewise for the test texts.
        context_length: Tokens read per text.
        n_values: Latents ablated (each in SAEBench's schema: 2, 5, 10, 20, 50,
            100, 500; at most d_sae).
        random_seed: Data sampling, probe initialisation, global RNGs.
        llm_batch_size: Texts per model pass.
        sae_batch_size: Texts per SAE encode.
        probe_train_batch_size: The residual probes' training batch.
        probe_test_batch_size: Their test batch (SAEBench caps it at 500).
        probe_epochs: Their epochs.
        probe_lr: Their learning rate.
        probe_l1_penalty: Their L1 penalty.
        early_stopping_patience: Epochs without improvement before stopping.
    """

    dataset_names: tuple[str, ...] = (
        "LabHC/bias_in_bios_class_set1",
        "canrager/amazon_reviews_mcauley_1and5",
    )
    train_set_size: int = 4000
    test_set_size: int = 1000
    context_length: int = 128
    n_values: tuple[int, ...] = (2, 5, 10, 20, 50, 100, 500)
    random_seed: int = 42
    llm_batch_size: int = 32
    sae_batch_size: int = 125
    probe_train_batch_size: int = 16
    probe_test_batch_size: int = 500
    probe_epochs: int = 20
    probe_lr: float = 1e-3
    probe_l1_penalty: float = 1e-3
    early_stopping_patience: int = 20

    @classmethod
    def cpu(cls, **overrides: Any) -> "TppSettings":
        """The three local sets (Brown skipped when absent), 100 train and 50 test
        texts a class of 128 tokens, SAEBench's probes, n up to 100 (500 would
        ablate almost half of a 1,152-latent SAE). Measured on 2 cores, a d_sae
        1,152 SAE at layer 3: 95 s first, 55 s reused (the ablations, per class
        and n, dominate; 465 MB in work_dir)."""
        values: dict[str, Any] = dict(
            dataset_names=CPU_DATASETS,
            train_set_size=200,
            test_set_size=100,
            n_values=(2, 5, 10, 20, 50, 100),
        )
        return cls(**{**values, **overrides})

    @classmethod
    def tiny(cls, **overrides: Any) -> "TppSettings":
        """For tests: two local sets, 20 / 10 texts a class of 32 tokens, 3 probe
        epochs."""
        values: dict[str, Any] = dict(
            dataset_names=("local/agnews", "local/code"),
            train_set_size=40,
            test_set_size=20,
            context_length=32,
            n_values=(2, 10),
            probe_epochs=3,
        )
        return cls(**{**values, **overrides})

    def eval_config(self, model_name: str, llm_dtype: str) -> Any:
        from sae_bench.evals.scr_and_tpp.eval_config import ScrAndTppEvalConfig

        values = asdict(self)
        values.update(
            dataset_names=list(self.dataset_names), n_values=list(self.n_values)
        )
        return ScrAndTppEvalConfig(
            model_name=model_name, llm_dtype=llm_dtype, perform_scr=False, **values
        )


def activation_key(settings: SparseProbingSettings | TppSettings, dtype: str) -> str:
    """What the cached activations (and TPP's residual probes) depend on besides
    model, hook and dataset name: every setting but the SAE-side ones."""
    relevant = asdict(settings)
    for name in ("dataset_names", "sae_batch_size", "llm_batch_size", "n_values"):
        relevant.pop(name, None)
    relevant.update(dtype=dtype, local_data_version=labelled_text.LOCAL_DATA_VERSION)
    digest = hashlib.sha256(json.dumps(relevant, sort_keys=True).encode())
    return f"seed-{settings.random_seed}-{digest.hexdigest()[:10]}"


def _residual_layer(sae: SAE[Any], hooked_model: Any, eval_name: str) -> int:
    """The block whose output the SAE reads; a ValueError saying the fix else."""
    hook_name = str(sae.cfg.metadata.hook_name)
    try:
        hook = as_transformer_lens_hook(hook_name)
    except ValueError:
        hook = hook_name
    layer = hook_layer(hook) if hook.endswith("hook_resid_post") else None
    if layer is None:
        raise ValueError(
            f"sae.cfg.metadata.hook_name: {eval_name} probes the residual stream "
            f"after a block; {hook_name!r} is not. Pass an SAE hooked as "
            f"'model.layers.N' or 'blocks.N.hook_resid_post'."
        )
    if layer >= hooked_model.cfg.n_layers:
        raise ValueError(
            f"sae.cfg.metadata.hook_name: {hook_name!r} reads block {layer}; the "
            f"model has {hooked_model.cfg.n_layers}: load it with n_blocks={layer + 1}."
        )
    return layer


def _check_sizes(
    values: tuple[int, ...], allowed: frozenset[int], d_sae: int, name: str
) -> None:
    if not values or not set(values) <= allowed or max(values) > d_sae:
        raise ValueError(
            f"{name}: {values}; each must be one of {sorted(allowed)} (SAEBench's "
            f"output schema) and at most the SAE's d_sae ({d_sae})."
        )


def _run_saebench(
    kind: str,
    sae: SAE[Any],
    hooked_model: Any,
    settings: SparseProbingSettings | TppSettings,
    work_dir: Path,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Shared plumbing: validate, redirect, run SAEBench's run_eval, and return
    (its output for the SAE, bookkeeping)."""
    from sae_bench.evals.scr_and_tpp import main as tpp_main
    from sae_bench.evals.sparse_probing import main as sp_main

    tpp = kind == "tpp"
    main = tpp_main if tpp else sp_main
    eval_name = "TPP" if tpp else "sparse probing"
    _residual_layer(sae, hooked_model, eval_name)
    model_name = str(hooked_model.cfg.model_name)
    dtype = str(hooked_model.cfg.dtype).removeprefix("torch.")
    artifacts_path = work_dir / "artifacts" / activation_key(settings, dtype)
    hook = as_transformer_lens_hook(str(sae.cfg.metadata.hook_name))
    artifacts = artifacts_path / kind / model_name / hook
    suffix = "_probes.pkl" if tpp else "_activations.pt"

    def cached(name: str) -> bool:
        stem = name.replace("/", "_")
        return all(
            (artifacts / f"{stem}{end}").exists() for end in ("_activations.pt", suffix)
        )

    if tpp:
        assert isinstance(settings, TppSettings)
        sizes = (settings.train_set_size, settings.test_set_size)
        fields_, known = "train_set_size/test_set_size", tpp_main.COLUMN2_VALS_LOOKUP
        _check_sizes(settings.n_values, TPP_N, sae.cfg.d_sae, "n_values")
    else:
        assert isinstance(settings, SparseProbingSettings)
        sizes = (settings.probe_train_set_size, settings.probe_test_set_size)
        fields_ = "probe_train_set_size/probe_test_set_size"
        from sae_bench.sae_bench_utils.dataset_info import (
            chosen_classes_per_dataset as known,
        )

        _check_sizes(settings.k_values, SPARSE_PROBING_K, sae.cfg.d_sae, "k_values")
    used, skipped = labelled_text.usable_datasets(
        settings.dataset_names, sizes, fields_, known, cached
    )
    reused = all(cached(name) for name in used)
    prepared = prepare_sae(sae, model_name)
    config = settings.eval_config(model_name, dtype)
    config.dataset_names = list(used)
    output_dir = work_dir / "results"
    output_dir = output_dir if tpp else output_dir / kind
    device = str(next(hooked_model.parameters()).device)

    start = time.perf_counter()
    clean_accuracies: dict[str, dict[str, float]] = {}
    with (
        seeded(settings.random_seed),
        labelled_text.saebench_sees_local_datasets(tpp_main if tpp else None),
        patched(main, "HookedTransformer", ProvidedModel(hooked_model)),
        sklearn_probes_scoped(),
        working_directory(work_dir),
        _clean_accuracies_recorded(tpp_main, clean_accuracies)
        if tpp
        else contextlib.nullcontext(),
    ):
        results = main.run_eval(
            config,
            [(SAE_RELEASE, prepared)],
            device,
            str(output_dir),
            force_rerun=True,
            clean_up_activations=False,
            save_activations=True,
            artifacts_path=str(artifacts_path),
        )
    (output,) = results.values()
    books = dict(
        datasets_used=used,
        datasets_skipped=skipped,
        seconds=time.perf_counter() - start,
        activations_reused=reused,
        settings=asdict(settings),
    )
    return output, books | {"clean_accuracies": clean_accuracies}


@contextlib.contextmanager
def _clean_accuracies_recorded(
    tpp_main: Any, store: dict[str, dict[str, float]]
) -> Iterator[None]:
    """TPP's clean residual-probe accuracies per dataset, as SAEBench's
    `run_eval_single_dataset` returns them (it keeps them otherwise only in a
    pickle, which this package never loads)."""
    original = tpp_main.run_eval_single_dataset

    def recording(dataset_name: str, *args: Any, **kwargs: Any) -> Any:
        raw_results, clean = original(dataset_name, *args, **kwargs)
        store[dataset_name] = {str(c): float(a) for c, a in clean.items()}
        return raw_results, clean

    with patched(tpp_main, "run_eval_single_dataset", recording):
        yield


def _per_dataset(output: dict[str, Any], suffix: str) -> dict[str, dict[str, float]]:
    return {
        detail["dataset_name"].removesuffix(suffix): {
            k: float(v)
            for k, v in detail.items()
            if k != "dataset_name" and v is not None
        }
        for detail in output["eval_result_details"]
    }


def _work_dir(work_dir: str | Path) -> Path:
    path = Path(work_dir).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def run_sparse_probing(
    sae: SAE[Any],
    hooked_model: Any,
    settings: SparseProbingSettings = SparseProbingSettings(),
    work_dir: str | Path | None = None,
) -> SparseProbingResult:
    """SAEBench's sparse-probing eval of `sae` on `hooked_model`, offline.

    Args:
        sae: A SAELens SAE on the residual stream after a block, hooked as
            `model.layers.N` or `blocks.N.hook_resid_post`. Not modified.
        hooked_model: A `HookedTransformer` of the same model; SAEBench runs it
            up to the SAE's block only, so `load_hooked_transformer(model_dir,
            n_blocks=N + 1)` suffices.
        settings: Datasets, sizes and k values.
        work_dir: Where SAEBench's files go. Model activations saved there are
            reused by later SAEs with the same model, hook and settings. A
            temporary directory, removed afterwards, when None.
    """
    if work_dir is None:
        with tempfile.TemporaryDirectory(prefix="sparse-probing-") as tmp:
            return run_sparse_probing(sae, hooked_model, settings, tmp)
    output, books = _run_saebench(
        "sparse_probing", sae, hooked_model, settings, _work_dir(work_dir)
    )
    books.pop("clean_accuracies")
    metrics = output["eval_result_metrics"]
    llm, sae_metrics = metrics["llm"], metrics["sae"]
    ks = settings.k_values
    return SparseProbingResult(
        sae_test_accuracy=float(sae_metrics["sae_test_accuracy"]),
        sae_top_k_test_accuracy={
            k: float(sae_metrics[f"sae_top_{k}_test_accuracy"]) for k in ks
        },
        llm_test_accuracy=float(llm["llm_test_accuracy"]),
        llm_top_k_test_accuracy={
            k: float(llm[f"llm_top_{k}_test_accuracy"]) for k in ks
        },
        per_dataset=_per_dataset(output, "_results"),
        per_class={
            name.removesuffix("_results"): by_metric
            for name, by_metric in output["eval_result_unstructured"].items()
        },
        **books,
    )


def run_tpp(
    sae: SAE[Any],
    hooked_model: Any,
    settings: TppSettings = TppSettings(),
    work_dir: str | Path | None = None,
) -> TppResult:
    """SAEBench's TPP eval (`scr_and_tpp` with `perform_scr=False`) of `sae` on
    `hooked_model`, offline. Arguments as `run_sparse_probing`'s; the residual
    probes, like the activations, are saved in work_dir and reused."""
    if work_dir is None:
        with tempfile.TemporaryDirectory(prefix="tpp-") as tmp:
            return run_tpp(sae, hooked_model, settings, tmp)
    output, books = _run_saebench(
        "tpp", sae, hooked_model, settings, _work_dir(work_dir)
    )
    clean = books.pop("clean_accuracies")
    metrics = output["eval_result_metrics"]["tpp_metrics"]
    ns = settings.n_values
    return TppResult(
        total_metric={n: float(metrics[f"tpp_threshold_{n}_total_metric"]) for n in ns},
        intended_diff={
            n: float(metrics[f"tpp_threshold_{n}_intended_diff_only"]) for n in ns
        },
        unintended_diff={
            n: float(metrics[f"tpp_threshold_{n}_unintended_diff_only"]) for n in ns
        },
        llm_test_accuracy=clean,
        per_dataset=_per_dataset(output, "_tpp_results"),
        per_class=output["eval_result_unstructured"],
        **books,
    )
