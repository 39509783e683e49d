"""`saelens-aligned dashboard`: feature pages for SAEs, and SAEs on one hook compared.

1. `validate` - every check that can fail, before the model loads: each SAE
   resolves (folder, RELEASE/SAE_ID, release, or HF repo), its hook exists in the
   model and has a TransformerLens block counterpart, its width is the model's,
   the feature ids fit, the text resolves.
2. `activations` - one model pass (the embedded model's `HookedTransformer` view,
   `pipeline.transformer_lens_view`) over held-out text, with a progress bar.
3. Each SAE's densities; `matching` pairs every other SAE on a hook with the
   first SAE on it (the reference).
4. `feature_pages` - SAEDashboard's page for each SAE (the reference's chosen
   features; for the others, their partners of those features).
5. `comparison_page` - `index.html`, the overview with the comparisons.
"""

import importlib.util
import json
import re
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from sae_lens.saes.sae import SAE

from saelens_aligned.dashboards.activations import (
    ActivationPass,
    run_activation_pass,
    sample_tokens,
)
from saelens_aligned.dashboards.comparison_page import (
    ComparisonView,
    SAEOverview,
    render_overview,
)
from saelens_aligned.dashboards.config import DashboardConfig
from saelens_aligned.dashboards.feature_pages import (
    PageHeader,
    feature_numbers,
    write_feature_page,
)
from saelens_aligned.dashboards.matching import (
    dead_latents,
    duplicate_latents,
    match_decoders,
)
from saelens_aligned.dashboards.scripts import vendored_scripts
from saelens_aligned.diagnostics import sae_alignment_scores
from saelens_aligned.errors import InputError
from saelens_aligned.pipeline.models import special_token_ids
from saelens_aligned.pipeline.progress import say
from saelens_aligned.pipeline.source import ResolvedSource, Source, resolve_source
from saelens_aligned.pipeline.transformer_lens_view import load_hooked_transformer

OVERVIEW_FILENAME = "index.html"
SUMMARY_FILENAME = "dashboard.json"


class DashboardInputError(InputError):
    """A dashboard input is unusable; the message says why and what to do."""


@dataclass
class DashboardSAE:
    """An SAE to show, checked.

    Attributes:
        name: File-safe unique name (its page is NAME.html).
        spec: The argument it came from.
        sae: The loaded SAE (never modified).
        source: Its local folder.
        hook: Its hook as a module path of the model (`model.layers.3`).
        view_hook: The same hook in the TransformerLens view
            (`blocks.3.hook_resid_post`).
    """

    name: str
    spec: str
    sae: SAE[Any]
    source: Path
    hook: str
    view_hook: str


@dataclass
class DashboardInputs:
    """Everything `validate` checked."""

    config: DashboardConfig
    saes: list[DashboardSAE]
    resolved: ResolvedSource
    output_dir: Path


@dataclass
class DashboardResult:
    """What `run_dashboard` wrote and how long it took."""

    output_dir: Path
    pages: dict[str, Path]
    overview: Path
    seconds: dict[str, float] = field(default_factory=dict)


def _error(spec: str, message: object) -> DashboardInputError:
    return DashboardInputError(f"SAE {spec!r}: {message}")


def resolve_sae(spec: str, device: str) -> tuple[SAE[Any], Path]:
    """The SAE `spec` names: a local folder, RELEASE/SAE_ID, a release, or an HF
    repo id (read from the local HF cache when the hub is offline)."""
    from saelens_aligned.io.pretrained import NotSafetensorsError, is_release, load_sae

    release, _, sae_id = spec.partition("/")
    as_release = not Path(spec).expanduser().exists() and is_release(release)
    try:
        if as_release:
            loaded = load_sae(release, sae_id or None, device=device)
        else:
            loaded = load_sae(spec, device=device)
    except (FileNotFoundError, ValueError, NotSafetensorsError) as e:
        raise _error(spec, e) from e
    except OSError as e:  # the hub is unreachable and the repo is not cached
        raise _error(
            spec,
            "not a local folder, nor RELEASE/SAE_ID of a known release, and the "
            f"Hugging Face hub could not provide it ({type(e).__name__}). Pass an "
            "SAE folder or a release id such as "
            "smollm2-135m-instruct-res-aligned-topk-8x/layer_3.",
        ) from e
    return loaded.sae, loaded.path


def _names(specs: list[str]) -> list[str]:
    """File-safe, unique names: a folder's own name, else the spec with `/` as
    `__` (RELEASE__SAE_ID, OWNER__REPO)."""
    names: list[str] = []
    for spec in specs:
        path = Path(spec).expanduser()
        raw = path.resolve().name if path.exists() else spec.replace("/", "__")
        base = re.sub(r"[^A-Za-z0-9_.-]+", "_", raw).strip("._") or "sae"
        name, n = base, 2
        while name in names or name == Path(OVERVIEW_FILENAME).stem:
            name, n = f"{base}_{n}", n + 1
        names.append(name)
    return names


def _view_hook(spec: str, hook: str) -> tuple[str, str]:
    """(module path, TransformerLens hook) of an SAE's hook in either naming."""
    from saelens_aligned.pipeline.transformer_lens_view import (
        HOOK_NAME_PAIRS,
        hf_hook_name,
        hook_layer,
        transformer_lens_hook_name,
    )

    try:
        if hook.startswith("blocks.") or hook.startswith("hook_"):
            module, view = hf_hook_name(hook), hook
        else:
            module, view = hook, transformer_lens_hook_name(hook)
    except ValueError:
        known = ", ".join(pair[0] for pair in HOOK_NAME_PAIRS)
        raise _error(
            spec,
            f"its hook {hook!r} has no TransformerLens counterpart that SAEDashboard "
            f"can read (known: {known}).",
        ) from None
    if hook_layer(view) is None:
        raise _error(
            spec,
            f"its hook {hook!r} is not inside a block; SAEDashboard reads "
            "block hooks (model.layers.N...).",
        )
    return module, view


def check_output_dir(out: str) -> Path:
    path = Path(out).expanduser()
    if path.exists() and not path.is_dir():
        raise DashboardInputError(f"--out {out!r} is a file, not a folder.")
    return path


def validate(config: DashboardConfig) -> DashboardInputs:
    """Every check that can fail, before the model runs on any text."""
    from transformers import AutoConfig

    if importlib.util.find_spec("sae_dashboard") is None:
        raise DashboardInputError(
            "Feature pages need SAEDashboard: `make install`, or `pip install "
            "--no-deps sae-dashboard==0.8.0 'saelens-aligned[dashboard]'` (--no-deps: "
            "it declares transformer-lens<3 and transformers<4.57, which would move "
            "our pins; its modules run on ours)."
        )
    if not config.saes:
        raise DashboardInputError("Pass at least one SAE.")
    if config.features <= 0:
        raise DashboardInputError(f"--features {config.features} must be positive.")
    if config.tokens < config.context_size:
        raise DashboardInputError(
            f"--tokens {config.tokens} must be at least --context-size "
            f"{config.context_size}."
        )
    if config.minibatch_size <= 0:
        raise DashboardInputError("--minibatch-size must be positive.")
    output_dir = check_output_dir(config.out)
    saes = []
    for name, spec in zip(_names(list(config.saes)), config.saes, strict=True):
        sae, path = resolve_sae(spec, config.device)
        hook = sae.cfg.metadata.hook_name
        if not hook:
            raise _error(spec, "its cfg.json names no hook_name; set it there.")
        module, view = _view_hook(spec, hook)
        saes.append(DashboardSAE(name, spec, sae, path, module, view))
    resolved = resolve_source(
        Source(
            model=config.model,
            hook=saes[0].hook,
            dataset=config.dataset,
            text_column=config.text_column,
            context_size=config.context_size,
            device=config.device,
            cache_dir=config.cache_dir,
        )
    )
    if not Path(resolved.model_name).is_dir():
        raise DashboardInputError(
            f"--model {config.model!r}: dashboards read a local model directory "
            "(or leave --model out for the embedded SmolLM2-135M-Instruct)."
        )
    # Every hook the view maps is the residual width (embeddings, attention and
    # MLP outputs, block outputs).
    width = AutoConfig.from_pretrained(resolved.model_name).hidden_size
    for entry in saes:
        if entry.hook != saes[0].hook:
            resolve_source(replace(resolved.source, hook=entry.hook))
        if entry.sae.cfg.d_in != width:
            raise _error(
                entry.spec,
                f"d_in {entry.sae.cfg.d_in} differs from the width {width} of "
                f"{entry.hook} in {resolved.model_label}; pass the model it was "
                "trained on with --model.",
            )
    reference = saes[0]
    too_big = [
        i for i in config.shown_features() if not 0 <= i < reference.sae.cfg.d_sae
    ]
    if too_big:
        raise DashboardInputError(
            f"--feature-ids {too_big} are outside 0..{reference.sae.cfg.d_sae - 1} "
            f"(latents of {reference.spec})."
        )
    return DashboardInputs(config, saes, resolved, output_dir)


def _shown(
    entry: DashboardSAE, reference: DashboardSAE, features: tuple[int, ...], match: Any
) -> tuple[int, ...]:
    if entry is reference or match is None:
        return tuple(i for i in features if i < entry.sae.cfg.d_sae)
    partners = (match.partner_of(i) for i in features)
    return tuple(dict.fromkeys(p.b for p in partners if p is not None))


def overviews_and_comparisons(
    inputs: DashboardInputs, activations: ActivationPass
) -> tuple[dict[str, SAEOverview], list[list[ComparisonView]]]:
    """Each SAE's densities, alignment, dead and duplicate latents and shown
    features; each hook's other SAEs matched with its reference."""
    by_hook: dict[str, list[DashboardSAE]] = {}
    for entry in inputs.saes:
        by_hook.setdefault(entry.view_hook, []).append(entry)
    features = inputs.config.shown_features()
    overviews: dict[str, SAEOverview] = {}
    groups: list[list[ComparisonView]] = []
    for hook, entries in by_hook.items():
        reference = entries[0]
        matches = {
            e.name: match_decoders(reference.sae.W_dec, e.sae.W_dec)
            for e in entries[1:]
        }
        for e in entries:
            density = activations.density(e.sae, hook)
            overviews[e.name] = SAEOverview(
                name=e.name,
                source=f"{e.spec} ({e.source})",
                hook=e.hook,
                page=f"{e.name}.html",
                shown=_shown(e, reference, features, matches.get(e.name)),
                density=density,
                alignment=sae_alignment_scores(e.sae),
                dead=dead_latents(density),
                duplicates=duplicate_latents(e.sae.W_dec),
            )
        groups.append(
            [
                ComparisonView(overviews[reference.name], overviews[e.name], m)
                for e in entries[1:]
                for m in [matches[e.name]]
            ]
        )
    return overviews, groups


def run_dashboard(config: DashboardConfig) -> DashboardResult:
    """Validate, run the model once, and write every page."""
    seconds: dict[str, float] = {}
    start = time.monotonic()
    inputs = validate(config)
    scripts = vendored_scripts(config.cache_dir)  # fails before the model loads
    resolved, output_dir = inputs.resolved, inputs.output_dir
    say(f"Loading {resolved.model_label} (TransformerLens view) ...")
    model = load_hooked_transformer(resolved.model_name, device=config.device)
    tokens = sample_tokens(
        resolved.corpus, model.tokenizer, config.tokens, config.context_size
    )
    output_dir.mkdir(parents=True, exist_ok=True)
    work = output_dir / ".activations"
    shutil.rmtree(work, ignore_errors=True)
    seconds["setup"] = time.monotonic() - start
    tick = time.monotonic()
    hooks = list(dict.fromkeys(entry.view_hook for entry in inputs.saes))
    activations = run_activation_pass(
        model, tokens, hooks, config.minibatch_size, work, special_token_ids(model)
    )
    seconds["activation_pass"] = time.monotonic() - tick
    read = (
        f"{activations.counted_tokens():,} tokens of held-out text from "
        f"{resolved.corpus.name} (BOS/EOS/pad left out), context "
        f"{config.context_size}, model {resolved.model_label}"
    )
    pages = {}
    try:
        tick = time.monotonic()
        overviews, groups = overviews_and_comparisons(inputs, activations)
        seconds["densities_and_matching"] = time.monotonic() - tick
        for entry in inputs.saes:
            tick = time.monotonic()
            overview = overviews[entry.name]
            features = list(overview.shown)
            if not features:
                continue
            header = PageHeader(
                title=entry.name,
                lines=(
                    f"{entry.spec}: {entry.hook}, d_sae {entry.sae.cfg.d_sae}",
                    read,
                ),
                back_link=OVERVIEW_FILENAME,
            )
            pages[entry.name] = write_feature_page(
                entry.sae,
                model,
                entry.view_hook,
                features,
                activations,
                output_dir / overview.page,
                header,
                feature_numbers(features, overview.density, overview.alignment),
                scripts,
            )
            seconds[f"page_{entry.name}"] = time.monotonic() - tick
    finally:
        shutil.rmtree(work, ignore_errors=True)
    overview_path = output_dir / OVERVIEW_FILENAME
    overview_path.write_text(
        render_overview(list(overviews.values()), groups, (read,)), encoding="utf-8"
    )
    seconds["total"] = time.monotonic() - start
    (output_dir / SUMMARY_FILENAME).write_text(
        json.dumps(
            {
                "config": asdict(config),
                "pages": {name: path.name for name, path in pages.items()},
                "seconds": {k: round(v, 2) for k, v in seconds.items()},
            },
            indent=2,
        )
    )
    return DashboardResult(output_dir, pages, overview_path, seconds)
