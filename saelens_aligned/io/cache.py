"""Where converted models, corpora and activation caches live."""

import os
from pathlib import Path

CACHE_ENV_VAR = "SAELENS_ALIGNED_CACHE"


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """Where converted models and corpora live: `cache_dir`, else
    $SAELENS_ALIGNED_CACHE, else $XDG_CACHE_HOME/saelens-aligned (~/.cache/...)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get(CACHE_ENV_VAR):
        return Path(os.environ[CACHE_ENV_VAR]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "saelens-aligned"
