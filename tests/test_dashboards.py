"""`saelens-aligned dashboard` on the embedded model: SAEDashboard's pages open in a
real headless browser with no request leaving the machine and show the expected
features; the comparison pairs each latent with its twin; the model runs once;
the caller's SAE is left unchanged; bad input is one line and exit status 2.

The browser is Debian's Chromium, which `make test` installs where it is missing;
without it these tests fail with the command that installs it, never skip.
"""

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import torch
from sae_lens.saes.sae import SAE

from saelens_aligned.cli import main as cli_main
from saelens_aligned.dashboards.activations import (
    cache_file,
    run_activation_pass,
    sample_tokens,
)
from saelens_aligned.dashboards.feature_pages import dashboard_data
from saelens_aligned.dashboards.scripts import external_references
from saelens_aligned.io.sae_dirs import load_sae_dir
from saelens_aligned.pipeline.corpora import default_corpus
from saelens_aligned.pipeline.models import default_model_dir, special_token_ids
from saelens_aligned.pipeline.transformer_lens_view import load_hooked_transformer
from tests.conftest import make_sae
from tests.test_cli_errors import assert_input_error

HOOK = "model.layers.1"
VIEW_HOOK = "blocks.1.hook_resid_post"
D_IN, D_SAE = 576, 64
FEATURES = 3
ARGS = ["--tokens", "256", "--context-size", "64", "--minibatch-size", "2"]
PROG = "saelens-aligned dashboard"


def chromium() -> str:
    """Debian's Chromium; its absence is a failure naming the fix, not a skip."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    pytest.fail(
        "Chromium is not installed: `make browser` (or `apt-get install -y "
        "chromium`) to run the dashboard's browser tests."
    )


def page_requests(net_log: Path) -> list[str]:
    """URLs the page itself asked the network stack for (Chromium's own
    background requests, which no page starts, are left out)."""
    log = json.loads(net_log.read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    starts = (e.get("params", {}) for e in log["events"] if e["type"] == start_job)
    return [
        p["url"] for p in starts if p.get("initiator") not in (None, "not an origin")
    ]


def render(page: Path, tmp_path: Path, fragment: str = "") -> tuple[str, list[str]]:
    """(the DOM after the page's scripts ran, the requests it made), in headless
    Chromium with every host name unresolvable and a dead loopback proxy, so no
    request can leave the machine even if the page tried one."""
    net_log = tmp_path / f"net-{page.stem}.json"
    done = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--proxy-server=127.0.0.1:9",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            f"--log-net-log={net_log}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            page.resolve().as_uri() + fragment,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, page_requests(net_log)


def top_activation_title(page_html: str, feature: int) -> str:
    """The "TOP ACTIVATIONS / MAX = ..." title of `feature` in a page's data."""
    data = re.search(
        r"function defineData\(\) \{.*?return (\{.*?\});\n", page_html, re.S
    )
    feature_data = json.loads(data.group(1))["DASHBOARD_DATA"][str(feature)]
    titles = re.findall(r"MAX = [-\d.]+", json.dumps(feature_data))
    return titles[0]


@pytest.fixture(scope="module")
def sae_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[int]]:
    """A random TopK SAE on the embedded model's layer 1, and a copy with its
    latents permuted, latent 0's twin replaced by a new direction, and a
    duplicate; the copy selects its top k on raw activations. Returns both
    folders and the permutation (the copy's latent j is the original's perm[j])."""
    root = tmp_path_factory.mktemp("saes")
    original = make_sae("topk", d_in=D_IN, d_sae=D_SAE, seed=1)
    original.cfg.metadata.hook_name = HOOK
    original.save_inference_model(root / "original")
    copy = load_sae_dir(root / "original")
    perm = torch.randperm(D_SAE, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        copy.W_dec.copy_(copy.W_dec[perm])
        copy.W_enc.copy_(copy.W_enc[:, perm])
        copy.b_enc.copy_(copy.b_enc[perm])
        twin_of_0 = int(torch.argsort(perm)[0])
        copy.W_dec[twin_of_0] = torch.randn(D_IN, generator=torch.Generator())
        last = D_SAE - 1 if twin_of_0 != D_SAE - 1 else D_SAE - 2
        copy.W_dec[last] = copy.W_dec[int(torch.argsort(perm)[1])]
    copy.cfg.rescale_acts_by_decoder_norm = False
    copy.save_model(root / "copy")
    return root / "original", root / "copy", perm.tolist()


@pytest.fixture(scope="module")
def dashboard(
    sae_pair: tuple[Path, Path, list[int]], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, int]:
    """The command's output folder, and how many model calls it made."""
    from transformer_lens import HookedTransformer

    out = tmp_path_factory.mktemp("dashboard") / "out"
    calls = []
    original_run = HookedTransformer.run_with_hooks

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs.get("stop_at_layer"))
        return original_run(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(HookedTransformer, "run_with_hooks", counted)
        cli_main(
            ["dashboard", str(sae_pair[0]), str(sae_pair[1]), "--features", "3"]
            + ["--out", str(out), *ARGS]
        )
    return out, len(calls)


def test_one_model_pass_serves_every_sae(dashboard):
    out, calls = dashboard
    summary = json.loads((out / "dashboard.json").read_text())
    assert calls == 2  # 256 tokens / 64 per sequence / 2 per call; no other pass
    assert set(summary["pages"]) == {"original", "copy"}
    assert not (out / ".activations").exists()


def test_the_comparison_pairs_each_latent_with_its_twin(dashboard, sae_pair):
    out, _ = dashboard
    perm = sae_pair[2]
    twin = {a: perm.index(a) for a in range(FEATURES)}
    html = (out / "index.html").read_text()
    assert external_references(html) == []
    # Latents 1 and 2 are shared with their twins (cosine 1), linked to both pages.
    for a in (1, 2):
        row = re.search(
            rf'<a href="original.html#{a}">{a}</a>.*?</tr>', html, re.S
        ).group(0)
        assert f'<a href="copy.html#{twin[a]}">{twin[a]}</a>' in row
        assert "class='shared'>1.000<" in row
    # Latent 0's twin was replaced: the original has it and the copy lacks it.
    row = re.search(r'<a href="original.html#0">0</a>.*?</tr>', html, re.S).group(0)
    assert "class='lacking'" in row
    lacks = re.search(
        r"original has, copy lacks: .*?</p>\s*<p class='list'>(.*?)</p>", html, re.S
    )
    assert lacks.group(1).startswith('<a href="original.html#0">0</a>')
    assert "Duplicate latents (decoder cosine &gt; 0.9" in html
    assert re.search(
        r"copy</a></td><td class='name'>model.layers.1</td><td>64</td>"
        r"<td>\d+ \(\d+.\d%\)</td><td>1 \(1.6%\)</td>",
        html,
    )


def test_feature_pages_render_offline_and_show_the_chosen_feature(
    dashboard, sae_pair, tmp_path
):
    out, _ = dashboard
    twin_of_2 = sae_pair[2].index(2)
    for page, feature, others in (
        (out / "original.html", 2, ("0", "1")),
        (out / "copy.html", twin_of_2, ()),
    ):
        html = page.read_text()
        assert external_references(html) == []
        dom, requests = render(page, tmp_path, f"#{feature}")
        assert requests == []
        assert "TOP ACTIVATIONS" in dom and "NEGATIVE LOGITS" in dom
        assert dom.count('class="main-svg"') >= 2  # Plotly drew both histograms
        assert f"Feature {feature}: density" in dom
        options = re.findall(r'<option value="(\d+)"', dom)
        assert str(feature) in options and all(o in options for o in others)
        # The view drawn is the chosen feature's: its own top activation.
        assert top_activation_title(html, feature) in dom
    dom, requests = render(out / "index.html", tmp_path)
    assert requests == [] and "Compared on model.layers.1" in dom


def test_the_request_check_sees_a_page_that_loads_from_another_host(tmp_path):
    page = tmp_path / "leaky.html"
    page.write_text(
        "<html><body><p>hi</p>"
        '<script src="http://cdn.example.invalid/lib.js"></script></body></html>'
    )
    _, requests = render(page, tmp_path)
    assert requests == ["http://cdn.example.invalid/lib.js"]


@torch.no_grad()
def test_the_callers_sae_is_left_unchanged_and_pages_show_its_activations(tmp_path):
    sae = make_sae("topk", d_in=D_IN, d_sae=D_SAE, seed=3)
    sae.cfg.metadata.hook_name = HOOK
    sae.save_inference_model(tmp_path / "sae")
    sae = load_sae_dir(tmp_path / "sae")
    sae.W_dec.mul_(torch.linspace(0.5, 2.0, D_SAE)[:, None])  # norms far from 1
    before = {k: v.clone() for k, v in sae.state_dict().items()}
    model = load_hooked_transformer(default_model_dir())
    tokens = sample_tokens(default_corpus(), model.tokenizer, 256, 64)
    activations = run_activation_pass(
        model, tokens, [VIEW_HOOK], 2, tmp_path / "acts", special_token_ids(model)
    )
    data = dashboard_data(sae, model, VIEW_HOOK, [5, 40], activations)

    after = sae.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    # SAEDashboard folded the decoder norms into the copy it was given.
    assert torch.allclose(data.encoder.W_dec.norm(dim=1), torch.ones(D_SAE), atol=1e-5)
    cached = activations.cache_dirs[VIEW_HOOK]
    acts_BSD = torch.cat(
        [torch.load(cache_file(cached, i))[VIEW_HOOK] for i in range(2)]
    )
    special = torch.tensor(sorted(activations.ignore_tokens))
    folded = copy.deepcopy(sae)
    folded.fold_W_dec_norm()
    for feature in (5, 40):
        top_group = data.feature_data_dict[feature].sequence_data.seq_group_data[0]
        shown = max(act for seq in top_group.seq_data for act in seq.feat_acts)
        # Pages show the folded SAE's activations (unit decoder rows), at tokens
        # with SAEDashboard's default context of 5 tokens on each side.
        acts_BS = folded.encode(acts_BSD)[..., feature]
        acts_BS[torch.isin(tokens, special)] = 0
        assert shown == pytest.approx(float(acts_BS[:, 6:-5].max()), abs=1e-4)
    assert any(
        max(seq.feat_acts) > 0
        for seq in data.feature_data_dict[40].sequence_data.seq_group_data[0].seq_data
    )


def _saved(tmp_path: Path, name: str, sae: SAE[Any], hook: str) -> str:
    sae.cfg.metadata.hook_name = hook
    sae.save_inference_model(tmp_path / name)
    return str(tmp_path / name)


@pytest.mark.parametrize(
    "argv,words",
    [
        (
            ["smollm2-135m-instruct-res-aligned-topk-8x/layer_99"],
            ["layer_99", "layer_3"],
        ),
        (["no-such-release/layer_3"], ["no-such-release/layer_3", "release"]),
    ],
    ids=["unknown-sae-id", "unknown-release"],
)
def test_unknown_releases_are_one_line(argv, words, tmp_path, capsys):
    argv = ["dashboard", *argv, "--out", str(tmp_path / "out")]
    assert_input_error(cli_main, argv, capsys, PROG, *words)
    assert not (tmp_path / "out").exists()


def test_an_sae_narrower_than_the_model_is_one_line(tmp_path, capsys):
    folder = _saved(tmp_path, "narrow", make_sae("topk", d_in=16, d_sae=32), HOOK)
    argv = ["dashboard", folder, "--out", str(tmp_path / "out")]
    assert_input_error(cli_main, argv, capsys, PROG, "d_in 16", "576", "--model")


def test_a_hook_the_model_lacks_is_one_line(tmp_path, capsys):
    sae = make_sae("topk", d_in=D_IN, d_sae=32)
    folder = _saved(tmp_path, "deep", sae, "model.layers.99")
    argv = ["dashboard", folder, "--out", str(tmp_path / "out")]
    assert_input_error(cli_main, argv, capsys, PROG, "model.layers.99", "model.layers.")


def test_bad_feature_ids_are_one_line(tmp_path, capsys):
    folder = _saved(tmp_path, "ok", make_sae("topk", d_in=D_IN, d_sae=32), HOOK)
    argv = ["dashboard", folder, "--feature-ids", "3,32", "--out", str(tmp_path / "o")]
    assert_input_error(cli_main, argv, capsys, PROG, "--feature-ids", "[32]")
