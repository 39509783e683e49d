"""One SAE's feature pages: SAEDashboard's runner and page, opened with no network.

`write_feature_page` runs `SaeVisRunner(cfg).run(encoder=..., model=..., tokens=...)`
on a *copy* of the SAE (the runner folds the decoder norms into the encoder in
place; the fold keeps every a_i, but the caller's object must not change), reading
the activations `activations.run_activation_pass` cached, and saves SAEDashboard's
feature-centric page: top-activating contexts, activation quantile groups, the
activation histogram, the logits a latent promotes and suppresses, correlated
neurons and features. Every feature of the SAE that was asked for is on one page,
chosen with its dropdown; `PAGE#17` opens feature 17 (the page keeps the hash in
step with the dropdown). The page is wrapped in a full HTML document with a
header (the SAE, its hook, the tokens read, the feature's density and alignment
score) and its CDN scripts are replaced by the libraries' code (`scripts`).
"""

import copy
import html
import json
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from sae_lens.saes.sae import SAE

from saelens_aligned.dashboards.activations import ActivationPass
from saelens_aligned.dashboards.scripts import (
    VendoredScripts,
    external_references,
    inline_cdn_scripts,
    inline_script,
)

# Keeps `PAGE#N` and SAEDashboard's dropdown (`#select-0`) in step, and shows the
# selected feature's numbers (FEATURE_NUMBERS) in the header.
_DEEP_LINK_SCRIPT = """
document.addEventListener("DOMContentLoaded", function () {
    const select = document.getElementById("select-0");
    const info = document.getElementById("feature-numbers");
    function describe(key) {
        const numbers = FEATURE_NUMBERS[key];
        info.textContent = numbers ? "Feature " + key + ": " + numbers : "";
    }
    function openHash() {
        const key = decodeURIComponent(location.hash.slice(1));
        if (select && [...select.options].some(o => o.value === key)) {
            select.value = key;
            select.dispatchEvent(new Event("change"));
        }
        describe(select ? select.value : Object.keys(FEATURE_NUMBERS)[0]);
    }
    if (select) {
        select.addEventListener("change", function () {
            history.replaceState(null, "", "#" + select.value);
            describe(select.value);
        });
    }
    window.addEventListener("hashchange", openHash);
    openHash();
});
"""

_PAGE_STYLE = """
body { font-family: system-ui, sans-serif; margin: 16px; }
header.saelens-aligned { margin-bottom: 12px; }
header.saelens-aligned h1 { font-size: 1.3em; margin: 0 0 4px 0; }
header.saelens-aligned p { margin: 2px 0; color: #333; }
#feature-numbers { font-weight: bold; }
footer.saelens-aligned { margin-top: 16px; color: #666; font-size: 0.85em; }
"""


@dataclass(frozen=True)
class PageHeader:
    """What the page says above SAEDashboard's view.

    Attributes:
        title: The SAE's name.
        lines: Plain-text lines under the title (hook, tokens read, ...).
        back_link: A relative link to the overview page, or None.
    """

    title: str
    lines: tuple[str, ...]
    back_link: str | None = None


def feature_numbers(
    features: list[int], density_F: torch.Tensor, alignment_F: torch.Tensor
) -> dict[str, str]:
    """Each feature's density and alignment score as the header shows them."""
    return {
        str(i): f"density {float(density_F[i]):.4%}, a_i = {float(alignment_F[i]):.3f}"
        for i in features
    }


def foldable_copy(sae: SAE[Any]) -> SAE[Any]:
    """A copy of `sae` for SAEDashboard, which folds the decoder norms into it.

    SAELens refuses that fold for a TopK SAE that selects its top k on raw
    activations (`rescale_acts_by_decoder_norm=False`), since it would change the
    selection; that copy keeps its weights (its pages show raw activations)."""
    encoder = copy.deepcopy(sae)
    if getattr(encoder.cfg, "rescale_acts_by_decoder_norm", True) is False:
        encoder.fold_W_dec_norm = lambda: None  # type: ignore[method-assign]
    return encoder


def dashboard_data(
    sae: SAE[Any],
    model: Any,
    hook: str,
    features: list[int],
    activations: ActivationPass,
) -> Any:
    """SAEDashboard's `SaeVisData` for `features` of a copy of `sae`, from the
    cached activations of `hook` (a TransformerLens hook of `model`)."""
    from sae_dashboard.sae_vis_data import SaeVisConfig
    from sae_dashboard.sae_vis_runner import SaeVisRunner

    config = SaeVisConfig(
        hook_point=hook,
        features=features,
        minibatch_size_tokens=activations.minibatch_size,
        minibatch_size_features=max(1, len(features)),
        cache_dir=activations.cache_dirs[hook],
        ignore_tokens=set(activations.ignore_tokens),
        device=str(sae.W_dec.device),
        verbose=False,
    )
    with warnings.catch_warnings():
        # eindex (SAEDashboard's top-k indexing) indexes with a list, which torch
        # deprecates but still reads as before: the pages' maxima are checked
        # against the SAE's own activations in tests/test_dashboards.py.
        warnings.filterwarnings("ignore", message="Using a non-tuple sequence")
        return SaeVisRunner(config).run(
            encoder=foldable_copy(sae), model=model, tokens=activations.tokens
        )


def wrap_page(
    fragment: str,
    header: PageHeader,
    numbers: dict[str, str],
    scripts: VendoredScripts,
) -> str:
    """SAEDashboard's page fragment as a complete, self-contained document."""
    back = (
        f'<p><a href="{html.escape(header.back_link)}">Overview and comparison</a></p>'
        if header.back_link
        else ""
    )
    lines = "".join(f"<p>{html.escape(line)}</p>" for line in header.lines)
    sources = "; ".join(scripts.sources)
    return (
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        f"<title>{html.escape(header.title)}</title>\n<style>{_PAGE_STYLE}</style>\n"
        "</head>\n<body>\n<header class='saelens-aligned'>\n"
        f"<h1>{html.escape(header.title)}</h1>\n{lines}{back}\n"
        "<p id='feature-numbers'></p>\n</header>\n"
        f"{inline_cdn_scripts(fragment, scripts)}\n"
        + inline_script(
            f"const FEATURE_NUMBERS = {json.dumps(numbers)};\n{_DEEP_LINK_SCRIPT}"
        )
        + "\n<footer class='saelens-aligned'>Pages by SAEDashboard (sae-dashboard); "
        f"scripts inlined from {html.escape(sources)}.</footer>\n</body>\n</html>\n"
    )


def write_feature_page(
    sae: SAE[Any],
    model: Any,
    hook: str,
    features: list[int],
    activations: ActivationPass,
    path: Path,
    header: PageHeader,
    numbers: dict[str, str],
    scripts: VendoredScripts,
) -> Path:
    """SAEDashboard's page of `features` of `sae`, self-contained, at `path`."""
    from sae_dashboard.data_writing_fns import save_feature_centric_vis

    data = dashboard_data(sae, model, hook, features, activations)
    with tempfile.TemporaryDirectory() as tmp:
        fragment_path = Path(tmp) / "page.html"
        save_feature_centric_vis(data, fragment_path, feature_idx=features[0])
        fragment = fragment_path.read_text(encoding="utf-8")
    page = wrap_page(fragment, header, numbers, scripts)
    leaks = external_references(page)
    if leaks:
        raise RuntimeError(f"The page still loads from other hosts: {leaks[:3]}")
    path.write_text(page, encoding="utf-8")
    return path
