"""The comparison's math: decoder-cosine matching, what each SAE lacks, dead and
duplicate latents; and the scripts inlined so pages need no network."""

import pytest
import torch

from saelens_aligned.dashboards.matching import (
    DUPLICATE_COSINE,
    SHARED_COSINE,
    dead_latents,
    duplicate_latents,
    match_decoders,
)
from saelens_aligned.dashboards.scripts import (
    VendoredScripts,
    external_references,
    inline_cdn_scripts,
)


def random_decoder(n: int, d: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def test_a_permuted_rescaled_copy_matches_every_latent_to_its_twin():
    w_a = random_decoder(40)
    perm = torch.randperm(40, generator=torch.Generator().manual_seed(1))
    w_b = w_a[perm] * torch.rand(40, 1).add(0.5)  # row norms do not matter
    matching = match_decoders(w_a, w_b)
    inverse = torch.argsort(perm)
    assert [p.a for p in matching.pairs] == list(range(40))
    assert [p.b for p in matching.pairs] == inverse.tolist()
    assert all(p.cosine == pytest.approx(1.0, abs=1e-5) for p in matching.pairs)
    assert matching.only_in_a == matching.only_in_b == ()
    assert matching.shared_fraction == 1.0


def test_replaced_latents_are_listed_as_lacking_on_both_sides():
    w_a = random_decoder(30, d=64)
    w_b = w_a.clone()
    w_b[[3, 7]] = random_decoder(2, d=64, seed=9)  # B lost 3 and 7, gained two
    matching = match_decoders(w_a, w_b)
    assert matching.only_in_a == (3, 7)
    assert matching.only_in_b == (3, 7)
    assert not matching.partner_of(3).shared
    assert matching.partner_of(5).b == 5 and matching.partner_of(5).shared
    assert matching.shared_fraction == pytest.approx(28 / 30)


def test_a_wider_sae_has_latents_the_narrow_one_lacks():
    w_b = random_decoder(12, d=64)
    matching = match_decoders(w_b[:8], w_b)
    assert len(matching.pairs) == 8
    assert matching.only_in_a == ()
    assert matching.only_in_b == (8, 9, 10, 11)
    assert (matching.n_a, matching.n_b) == (8, 12)


def test_matching_refuses_decoders_of_different_widths():
    with pytest.raises(ValueError, match="same width"):
        match_decoders(random_decoder(4, d=8), random_decoder(4, d=9))


def test_duplicates_name_the_later_latent_and_its_closest_earlier_twin():
    w = random_decoder(20, d=64)
    w[12] = 2.0 * w[4] + 0.01 * random_decoder(1, d=64, seed=3)[0]
    w[15] = w[4]
    w[19] = 0.0  # an untrained, all-zero row has no direction
    found = duplicate_latents(w)
    assert [(d.latent, d.of) for d in found] == [(12, 4), (15, 4)]
    assert all(d.cosine > DUPLICATE_COSINE for d in found)
    assert SHARED_COSINE < DUPLICATE_COSINE


def test_dead_latents_are_those_that_never_fired():
    assert dead_latents(torch.tensor([0.0, 0.1, 0.0, 1e-6])) == (0, 2)


SAE_DASHBOARD_TAGS = (
    '<div>page</div>\n<script src="https://d3js.org/d3.v6.min.js"></script>\n'
    '<script src="https://cdn.plot.ly/plotly-latest.min.js"></script>\n'
)


def test_the_cdn_tags_become_the_libraries_code():
    scripts = VendoredScripts(
        d3="var d3 = {}; // see https://d3js.org",
        plotly="var Plotly = '</script>';",
        sources=(),
    )
    page = inline_cdn_scripts(SAE_DASHBOARD_TAGS, scripts)
    assert "var d3 = {}" in page and "var Plotly" in page
    assert "<\\/script>" in page  # a literal end tag in the code cannot end it
    assert external_references(SAE_DASHBOARD_TAGS) == [
        "https://d3js.org/d3.v6.min.js",
        "https://cdn.plot.ly/plotly-latest.min.js",
    ]
    # URLs inside the inlined code are strings, never fetched.
    assert external_references(page) == []


def test_external_references_catch_stylesheets_images_and_protocol_relative_urls():
    page = (
        "<link rel='stylesheet' href='//fonts.example.org/a.css'>"
        '<img src="http://img.example.org/x.png"><a href="#17">17</a>'
        '<a href="page.html#3">3</a>'
    )
    assert external_references(page) == [
        "//fonts.example.org/a.css",
        "http://img.example.org/x.png",
    ]


def test_a_changed_template_is_an_error_not_a_page_that_needs_the_network():
    with pytest.raises(RuntimeError, match="template changed"):
        inline_cdn_scripts(
            "<script src='https://d3js.org/d3.v7.js'></script>",
            VendoredScripts(d3="", plotly="", sources=()),
        )
