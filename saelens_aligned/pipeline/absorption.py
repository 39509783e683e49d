"""SAEBench's feature-absorption eval on an SAE of a local model, offline.

Absorption (Chanin et al. 2024, as packaged by SAEBench) needs no hub dataset: it
builds a first-letter spelling task from the tokenizer's own vocabulary, trains a
logistic-regression probe for each letter on the model's residual stream, k-sparse
probes on the SAE's latents, and measures how often the letter's main latents fail
to fire while other latents aligned with the probe take over.

`run_absorption` calls SAEBench's own `sae_bench.evals.absorption.main.run_eval`
unchanged and returns its mean metrics. Four things are redirected for the duration
of the call only, because `run_eval` assumes a hub model and a writable checkout:

- it loads the model by name with `HookedTransformer.from_pretrained_no_processing`:
  it is handed the already-built `HookedTransformer` instead (see
  `transformer_lens_view`);
- its experiments default to writing under the installed `sae_bench` package and
  `./artifacts/absorption`: every file goes under `work_dir` instead;
- the vocabulary can be subsampled (`AbsorptionSettings.vocab_size`) for CPU runs;
- global RNGs are seeded from `random_seed` (SAEBench never uses its own seed
  field) and restored afterwards, as is torch's grad mode (`run_eval` turns it on).
"""

import contextlib
import hashlib
import json
import math
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from functools import partial
from pathlib import Path
from typing import Any

from sae_lens.saes.sae import SAE

from saelens_aligned.pipeline.saebench_redirects import (
    SAE_RELEASE,
    ProvidedModel,
    patched,
    prepare_sae,
    seeded,
    working_directory,
)


@dataclass(frozen=True)
class AbsorptionSettings:
    """SAEBench `AbsorptionEvalConfig` fields we set, with SAEBench's defaults, plus
    the vocabulary size. `AbsorptionSettings()` is SAEBench's default eval;
    `AbsorptionSettings.cpu()` and `.tiny()` shrink it.

    Attributes:
        random_seed: Seeds Python, NumPy and torch RNGs (prompt sampling, the
            train/test split of the vocabulary, probe initialisation).
        f1_jump_threshold: F1 gain from k-1 to k latents that counts as a split
            feature.
        max_k_value: Largest k of the k-sparse probes.
        prompt_template: The spelling prompt (10 in-context examples precede it).
        prompt_token_pos: Token read from each prompt (-6: the word, for this
            template and a tokenizer that spells " has the first letter:" as 5
            tokens).
        llm_batch_size: Prompts per model pass when measuring absorption.
        k_sparse_probe_l1_decay: L1 strength of the probe choosing k-sparse latents.
        k_sparse_probe_batch_size: Its batch size.
        k_sparse_probe_num_epochs: Its epochs.
        min_probe_f1: A letter counts as represented when its ground-truth probe's
            test F1 exceeds this (SAEBench `min_GT_probe_f1`).
        min_feats_for_eval: Letters that must be represented for the SAE to be
            evaluated at all.
        eval_k_sparse_probe_batch_size: Batch size scoring the k-sparse probes.
        precalc_k_sparse_probe_sae_acts: Encode the training set once (faster; the
            memory is n_words x d_sae floats).
        vocab_size: Words drawn (seeded, every first letter kept) from SAEBench's
            vocabulary, every alphabetic token; None keeps all of it. Metrics at
            different sizes are different measurements.
    """

    random_seed: int = 42
    f1_jump_threshold: float = 0.03
    max_k_value: int = 10
    prompt_template: str = "{word} has the first letter:"
    prompt_token_pos: int = -6
    llm_batch_size: int = 10
    k_sparse_probe_l1_decay: float = 0.01
    k_sparse_probe_batch_size: int = 4096
    k_sparse_probe_num_epochs: int = 50
    min_probe_f1: float = 0.6
    min_feats_for_eval: int = 20
    eval_k_sparse_probe_batch_size: int = 24
    precalc_k_sparse_probe_sae_acts: bool = False
    vocab_size: int | None = None

    @classmethod
    def cpu(cls, **overrides: Any) -> "AbsorptionSettings":
        """SAEBench's eval on 5,000 words: its probes and thresholds unchanged."""
        fields_ = dict(
            vocab_size=5000, llm_batch_size=32, precalc_k_sparse_probe_sae_acts=True
        )
        return cls(**{**fields_, **overrides})

    @classmethod
    def tiny(cls, **overrides: Any) -> "AbsorptionSettings":
        """For tests: 600 words, k up to 3, few probe epochs, and 5 represented
        letters suffice (so the absorption stage runs). Numbers mean nothing."""
        fields_ = dict(
            vocab_size=600,
            max_k_value=3,
            k_sparse_probe_num_epochs=3,
            min_feats_for_eval=5,
            llm_batch_size=32,
            precalc_k_sparse_probe_sae_acts=True,
        )
        return cls(**{**fields_, **overrides})

    def eval_config(self, model_name: str, llm_dtype: str) -> Any:
        """The SAEBench `AbsorptionEvalConfig` these settings stand for."""
        from sae_bench.evals.absorption.eval_config import AbsorptionEvalConfig

        values = asdict(self)
        values["min_GT_probe_f1"] = values.pop("min_probe_f1")
        values.pop("vocab_size")
        return AbsorptionEvalConfig(
            model_name=model_name, llm_dtype=llm_dtype, **values
        )

    def probe_key(self) -> str:
        """What the ground-truth probes depend on besides model and layer (they are
        cached under it and shared by every SAE evaluated in one work_dir)."""
        names = ("vocab_size", "random_seed", "prompt_template", "prompt_token_pos")
        relevant = {name: getattr(self, name) for name in names}
        digest = hashlib.sha256(json.dumps(relevant, sort_keys=True).encode())
        return f"vocab-{self.vocab_size or 'all'}-{digest.hexdigest()[:10]}"


@dataclass(frozen=True)
class AbsorptionResult:
    """SAEBench's absorption metrics for one SAE.

    Attributes:
        evaluable: False when too few first letters have an accurate ground-truth
            probe at this layer (SAEBench then computes no absorption metrics).
        reason: Why not evaluable; None when evaluable.
        n_letters_represented: Letters whose probe F1 exceeds `min_probe_f1`.
        mean_absorption_fraction_score: Mean over represented letters of the
            fraction of the probe's projection carried by absorbing latents.
        mean_full_absorption_score: Mean rate of full absorption (the main latents
            silent, one aligned latent carrying the probe).
        mean_num_split_features: Mean number of latents a letter is split over.
        std_dev_absorption_fraction_score: Their standard deviations over letters.
        std_dev_full_absorption_score:
        std_dev_num_split_features:
        seconds: Wall time of the eval, including probe training when the probes
            were not cached yet.
        probes_cached: Whether the ground-truth probes were reused from work_dir.
        settings: The settings it ran with.
    """

    evaluable: bool
    reason: str | None
    n_letters_represented: int
    mean_absorption_fraction_score: float
    mean_full_absorption_score: float
    mean_num_split_features: float
    std_dev_absorption_fraction_score: float
    std_dev_full_absorption_score: float
    std_dev_num_split_features: float
    seconds: float
    probes_cached: bool
    settings: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


METRIC_FIELDS = tuple(
    f.name for f in fields(AbsorptionResult) if f.name.startswith(("mean_", "std_dev_"))
)


MIN_WORDS_PER_LETTER = 10
"""A subsampled vocabulary keeps this many words of every first letter (all, when
fewer exist): SAEBench trains one k-sparse probe per letter and fails on a letter
missing from its training split."""


def subsample_vocab(words: list[str], size: int, seed: int) -> list[str]:
    """`size` of `words` drawn with `seed`, at least `MIN_WORDS_PER_LETTER` of each
    first letter, in their original order."""
    from sae_bench.evals.absorption.prompting import first_letter

    if len(words) <= size:
        return words
    rng = random.Random(seed)
    by_letter: dict[str, list[int]] = {}
    for index, word in enumerate(words):
        by_letter.setdefault(first_letter(word).strip().lower(), []).append(index)
    chosen: set[int] = set()
    for letter in sorted(by_letter):
        indices = by_letter[letter]
        chosen.update(rng.sample(indices, min(len(indices), MIN_WORDS_PER_LETTER)))
    rest = [index for index in range(len(words)) if index not in chosen]
    chosen.update(rng.sample(rest, max(0, size - len(chosen))))
    return [words[index] for index in sorted(chosen)]


def _subsampled(
    get_alpha_tokens: Callable[..., list[str]], size: int, seed: int
) -> Callable[..., list[str]]:
    def get_some_alpha_tokens(*args: Any, **kwargs: Any) -> list[str]:
        return subsample_vocab(get_alpha_tokens(*args, **kwargs), size, seed)

    return get_some_alpha_tokens


@contextlib.contextmanager
def _saebench_redirected(
    model: Any, work_dir: Path, probes_dir: Path, settings: AbsorptionSettings
) -> Iterator[None]:
    """SAEBench's absorption modules, for the duration of the block, take `model`
    as their model, write only under `work_dir`, and see `vocab_size` words."""
    from sae_bench.evals.absorption import common, feature_absorption, k_sparse_probing
    from sae_bench.evals.absorption import main as absorption_main

    results = work_dir / "experiments"
    k_sparse = partial(
        k_sparse_probing.run_k_sparse_probing_experiment,
        experiment_dir=results / k_sparse_probing.SPARSE_PROBING_EXPERIMENT_NAME,
        probes_dir=probes_dir,
    )
    absorption = partial(
        feature_absorption.run_feature_absortion_experiment,
        experiment_dir=results / feature_absorption.FEATURE_ABSORPTION_EXPERIMENT_NAME,
        sparse_probing_experiment_dir=results
        / k_sparse_probing.SPARSE_PROBING_EXPERIMENT_NAME,
        probes_dir=probes_dir,
    )
    with contextlib.ExitStack() as stack:
        stack.enter_context(
            patched(absorption_main, "HookedTransformer", ProvidedModel(model))
        )
        stack.enter_context(
            patched(absorption_main, "run_k_sparse_probing_experiment", k_sparse)
        )
        stack.enter_context(
            patched(absorption_main, "run_feature_absortion_experiment", absorption)
        )
        if settings.vocab_size is not None:
            for module in (common, feature_absorption):
                subsampled = _subsampled(
                    module.get_alpha_tokens, settings.vocab_size, settings.random_seed
                )
                stack.enter_context(patched(module, "get_alpha_tokens", subsampled))
        # run_eval writes its k-sparse-probing summary to ./artifacts/absorption.
        stack.enter_context(working_directory(work_dir))
        yield


def _letters_represented(work_dir: Path, min_probe_f1: float) -> int:
    """Letters above `min_probe_f1`, from the summary run_eval wrote."""
    (summary,) = (work_dir / "artifacts" / "absorption").glob(
        f"{SAE_RELEASE}_*_k_sparse_probing.json"
    )
    rows = json.loads(summary.read_text())
    return sum(1 for row in rows if row["f1_probe"] > min_probe_f1)


def run_absorption(
    sae: SAE[Any],
    hooked_model: Any,
    settings: AbsorptionSettings = AbsorptionSettings(),
    work_dir: str | Path | None = None,
) -> AbsorptionResult:
    """SAEBench's absorption eval of `sae` on `hooked_model`, offline.

    Args:
        sae: A SAELens SAE trained on the residual stream after a block, hooked as
            `model.layers.N` (`AutoModelForCausalLM`) or `blocks.N.hook_resid_post`.
            Not modified (a prepared copy is evaluated).
        hooked_model: A `HookedTransformer` of the same model, e.g.
            `transformer_lens_view.load_hooked_transformer(model_dir,
            n_blocks=N + 1)` (absorption reads no later block).
        settings: Eval size and SAEBench thresholds.
        work_dir: Where SAEBench's files go (probes, experiment tables, its result
            JSON). Ground-truth probes cached there are reused by later calls with
            the same model, layer and probe settings. A temporary directory, removed
            afterwards, when None.

    Returns:
        SAEBench's mean metrics, or `evaluable=False` with the reason when too few
        first letters are linearly decodable at this layer.
    """
    from sae_bench.evals.absorption.main import run_eval

    if work_dir is None:
        with tempfile.TemporaryDirectory(prefix="absorption-") as tmp:
            return run_absorption(sae, hooked_model, settings, tmp)
    work_dir = Path(work_dir).resolve()
    work_dir.mkdir(parents=True, exist_ok=True)

    model_name = str(hooked_model.cfg.model_name)
    prepared = prepare_sae(sae, model_name)
    layer = int(prepared.cfg.hook_layer)  # type: ignore[attr-defined]
    if layer >= hooked_model.cfg.n_layers:
        raise ValueError(
            f"The SAE reads block {layer}; the model has {hooked_model.cfg.n_layers}."
        )
    dtype = str(hooked_model.cfg.dtype).removeprefix("torch.")
    config = settings.eval_config(model_name, dtype)
    probes_dir = work_dir / "probes" / settings.probe_key()
    probes_cached = (probes_dir / model_name / f"layer_{layer}" / "probe.pth").exists()
    output_dir = work_dir / "results"
    output_dir.mkdir(exist_ok=True)
    device = str(next(hooked_model.parameters()).device)

    start = time.perf_counter()
    with (
        seeded(settings.random_seed),
        _saebench_redirected(hooked_model, work_dir, probes_dir, settings),
    ):
        results = run_eval(
            config, [(SAE_RELEASE, prepared)], device, str(output_dir), True
        )
    seconds = time.perf_counter() - start

    n_represented = _letters_represented(work_dir, settings.min_probe_f1)
    common = dict(
        n_letters_represented=n_represented,
        seconds=seconds,
        probes_cached=probes_cached,
        settings=asdict(settings),
    )
    if not results:
        nan = dict.fromkeys(METRIC_FIELDS, math.nan)
        reason = (
            f"only {n_represented} of 26 first letters have a ground-truth probe "
            f"with F1 > {settings.min_probe_f1} at {prepared.cfg.hook_name} of "  # type: ignore[attr-defined]
            f"{model_name}; SAEBench needs {settings.min_feats_for_eval}"
        )
        return AbsorptionResult(evaluable=False, reason=reason, **nan, **common)
    (output,) = results.values()
    mean = output["eval_result_metrics"]["mean"]
    metrics = {name: float(mean[name]) for name in METRIC_FIELDS}
    return AbsorptionResult(evaluable=True, reason=None, **metrics, **common)
