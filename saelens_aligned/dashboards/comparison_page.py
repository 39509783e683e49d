"""The overview page: every SAE's dead and duplicate latents, and SAEs on one hook
compared feature by feature (static HTML, no script, no network).

For each SAE: its width, hook, dead latents (never fired on the tokens read),
duplicate latents (decoder cosine above `matching.DUPLICATE_COSINE` with an
earlier latent), mean alignment score, and a link to its feature page. For each
SAE compared with the reference (the first SAE on that hook): the reference's
shown features side by side with their decoder-cosine partners, each with its
density and alignment score, and the lists of latents each has that the other
lacks (`matching.Matching`). A feature with a page links to it (`PAGE#N`).
"""

import html
from dataclasses import dataclass

import torch

from saelens_aligned.dashboards.matching import (
    DUPLICATE_COSINE,
    SHARED_COSINE,
    Duplicate,
    Matching,
)

# Latent lists longer than this are cut, with the count stated.
MAX_LISTED = 60

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 16px; max-width: 1400px; }
table { border-collapse: collapse; margin: 8px 0 16px 0; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f3f3f3; }
td.name, th.name { text-align: left; }
td.dead { background: #f8d7da; }
td.lacking { background: #fff3cd; }
td.shared { background: #d4edda; }
p.list { font-family: monospace; font-size: 0.9em; word-wrap: break-word; }
"""


@dataclass(frozen=True)
class SAEOverview:
    """One SAE as the overview shows it.

    Attributes:
        name: Its name (from the command line argument).
        source: Where it was loaded from.
        hook: The hook it reads.
        page: Its feature page's file name, relative to the overview.
        shown: The features on its page.
        density: Fraction of counted tokens each latent fired on. [d_sae]
        alignment: Each latent's alignment score a_i. [d_sae]
        dead: Latents that never fired.
        duplicates: Latents that repeat an earlier latent's decoder direction.
    """

    name: str
    source: str
    hook: str
    page: str
    shown: tuple[int, ...]
    density: torch.Tensor
    alignment: torch.Tensor
    dead: tuple[int, ...]
    duplicates: tuple[Duplicate, ...]

    @property
    def d_sae(self) -> int:
        return int(self.density.shape[0])

    def link(self, latent: int) -> str:
        """The latent's index, linked to its page when it has one."""
        if latent in self.shown:
            return f'<a href="{html.escape(self.page)}#{latent}">{latent}</a>'
        return str(latent)


@dataclass(frozen=True)
class ComparisonView:
    """The reference SAE and another SAE on the same hook, matched."""

    reference: SAEOverview
    other: SAEOverview
    matching: Matching


def _latent_list(sae: SAEOverview, latents: tuple[int, ...]) -> str:
    listed = ", ".join(sae.link(i) for i in latents[:MAX_LISTED])
    more = (
        f", ... ({len(latents) - MAX_LISTED} more)" if len(latents) > MAX_LISTED else ""
    )
    return f"<p class='list'>{listed or 'none'}{more}</p>"


def _fraction(count: int, total: int) -> str:
    return f"{count} ({count / max(total, 1):.1%})"


def summary_table(saes: list[SAEOverview]) -> str:
    rows = "".join(
        "<tr>"
        f"<td class='name'><a href='{html.escape(s.page)}'>{html.escape(s.name)}</a></td>"
        f"<td class='name'>{html.escape(s.hook)}</td><td>{s.d_sae}</td>"
        f"<td>{_fraction(len(s.dead), s.d_sae)}</td>"
        f"<td>{_fraction(len(s.duplicates), s.d_sae)}</td>"
        f"<td>{float(s.alignment.mean()):.3f}</td>"
        f"<td>{float(s.density.mean()):.4%}</td><td>{len(s.shown)}</td></tr>"
        for s in saes
    )
    return (
        "<table><tr><th class='name'>SAE</th><th class='name'>hook</th><th>d_sae</th>"
        "<th>dead latents</th><th>duplicate latents</th><th>mean a_i</th>"
        f"<th>mean density</th><th>features with pages</th></tr>{rows}</table>"
    )


def _cell(sae: SAEOverview, latent: int) -> str:
    density = float(sae.density[latent])
    dead = " class='dead'" if density <= 0 else ""
    return (
        f"<td>{sae.link(latent)}</td><td{dead}>{density:.4%}</td>"
        f"<td>{float(sae.alignment[latent]):.3f}</td>"
    )


def pairs_table(comparisons: list[ComparisonView]) -> str:
    """The reference's shown features, each beside its partner in every other SAE."""
    reference = comparisons[0].reference
    head = f"<th colspan='3'>{html.escape(reference.name)}</th>" + "".join(
        f"<th colspan='4'>{html.escape(c.other.name)}</th>" for c in comparisons
    )
    sub = "<th>latent</th><th>density</th><th>a_i</th>" + (
        "<th>latent</th><th>decoder cos</th><th>density</th><th>a_i</th>"
        * len(comparisons)
    )
    rows = []
    for latent in reference.shown:
        cells = _cell(reference, latent)
        for c in comparisons:
            pair = c.matching.partner_of(latent)
            if pair is None:
                cells += "<td colspan='4' class='lacking'>no partner</td>"
                continue
            kind = "shared" if pair.shared else "lacking"
            partner = _cell(c.other, pair.b)
            first, rest = partner.split("</td>", 1)
            cells += f"{first}</td><td class='{kind}'>{pair.cosine:.3f}</td>{rest}"
        rows.append(f"<tr>{cells}</tr>")
    return f"<table><tr>{head}</tr><tr>{sub}</tr>{''.join(rows)}</table>"


def comparison_section(comparisons: list[ComparisonView]) -> str:
    reference = comparisons[0].reference
    parts = [
        f"<h2>Compared on {html.escape(reference.hook)}: "
        f"{html.escape(reference.name)} and its decoder-cosine partners</h2>",
        "<p>Latents matched one to one by decoder cosine (Hungarian algorithm); a "
        f"pair is shared above cosine {SHARED_COSINE} (green), otherwise each side "
        "has a latent the other lacks (yellow). Dead latents' densities are red.</p>",
        pairs_table(comparisons),
    ]
    for c in comparisons:
        a, b, m = c.reference, c.other, c.matching
        parts += [
            f"<h3>{html.escape(a.name)} vs {html.escape(b.name)}: "
            f"{m.shared_fraction:.1%} of {html.escape(a.name)}'s latents shared</h3>",
            f"<p>{html.escape(a.name)} has, {html.escape(b.name)} lacks: "
            f"{_fraction(len(m.only_in_a), m.n_a)}</p>",
            _latent_list(a, m.only_in_a),
            f"<p>{html.escape(b.name)} has, {html.escape(a.name)} lacks: "
            f"{_fraction(len(m.only_in_b), m.n_b)}</p>",
            _latent_list(b, m.only_in_b),
        ]
    return "\n".join(parts)


def latent_health_section(sae: SAEOverview) -> str:
    duplicates = ", ".join(
        f"{sae.link(d.latent)}&asymp;{sae.link(d.of)} ({d.cosine:.2f})"
        for d in sae.duplicates[:MAX_LISTED]
    )
    return (
        f"<h3>{html.escape(sae.name)}</h3><p>Source: {html.escape(sae.source)}</p>"
        f"<p>Dead latents: {_fraction(len(sae.dead), sae.d_sae)}</p>"
        f"{_latent_list(sae, sae.dead)}"
        f"<p>Duplicate latents (decoder cosine &gt; {DUPLICATE_COSINE} with an "
        f"earlier latent): {_fraction(len(sae.duplicates), sae.d_sae)}</p>"
        f"<p class='list'>{duplicates or 'none'}</p>"
    )


def render_overview(
    saes: list[SAEOverview],
    comparisons: list[list[ComparisonView]],
    lines: tuple[str, ...],
) -> str:
    """The overview page: `comparisons` holds one list per hook with two or more
    SAEs (each other SAE against that hook's reference)."""
    text = "".join(f"<p>{html.escape(line)}</p>" for line in lines)
    body = [
        "<h1>Feature dashboards</h1>",
        text,
        summary_table(saes),
        *(comparison_section(group) for group in comparisons if group),
        "<h2>Dead and duplicate latents</h2>",
        *(latent_health_section(sae) for sae in saes),
    ]
    return (
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        f"<title>Feature dashboards</title>\n<style>{_STYLE}</style>\n</head>\n"
        "<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )
