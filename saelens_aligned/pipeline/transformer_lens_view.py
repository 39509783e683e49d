"""A TransformerLens `HookedTransformer` view of a local Hugging Face checkpoint.

Our SAEs are trained on an `AutoModelForCausalLM` (SAELens wraps it in
`HookedProxyLM`), whose hook names are module paths. Some SAEBench evals (absorption)
need a `HookedTransformer` instead. TransformerLens can convert a local Llama-family
directory with no hub access if it is handed the HF model and tokenizer, except that
`HookedTransformer.from_pretrained` first looks the name up in its list of official
models and raises on anything else; `local_model_names_accepted` lets a local
directory through that one check, for the duration of a `with` block.

Hook names of the two views (`N` = block index):

    AutoModelForCausalLM                HookedTransformer
    model.embed_tokens                  hook_embed
    model.layers.N.self_attn.o_proj     blocks.N.hook_attn_out
    model.layers.N.mlp                  blocks.N.hook_mlp_out
    model.layers.N                      blocks.N.hook_resid_post

`model.layers.N` is the residual stream after block N (HF `hidden_states[N + 1]`).
"""

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from transformer_lens import HookedTransformer
from typing_extensions import override

# (HF module-path pattern, TransformerLens hook pattern); `{layer}` is the block.
HOOK_NAME_PAIRS: tuple[tuple[str, str], ...] = (
    ("model.embed_tokens", "hook_embed"),
    ("model.layers.{layer}.self_attn.o_proj", "blocks.{layer}.hook_attn_out"),
    ("model.layers.{layer}.mlp", "blocks.{layer}.hook_mlp_out"),
    ("model.layers.{layer}", "blocks.{layer}.hook_resid_post"),
)


def _match(pattern: str, name: str) -> int | None | bool:
    """The layer `name` matches `pattern` at, True for a layerless match, else None."""
    regex = re.escape(pattern).replace(re.escape("{layer}"), r"(\d+)")
    found = re.fullmatch(regex, name)
    if found is None:
        return None
    return int(found.group(1)) if found.groups() else True


def _translate(name: str, source: int) -> str:
    for pair in HOOK_NAME_PAIRS:
        layer = _match(pair[source], name)
        if layer is None:
            continue
        target = pair[1 - source]
        return target if layer is True else target.format(layer=layer)
    known = ", ".join(pair[source] for pair in HOOK_NAME_PAIRS)
    raise ValueError(f"No counterpart known for hook {name!r} (known: {known}).")


def transformer_lens_hook_name(hf_hook_name: str) -> str:
    """The `HookedTransformer` hook reading the same activation as the
    `AutoModelForCausalLM` module path `hf_hook_name` (e.g. `model.layers.3` ->
    `blocks.3.hook_resid_post`)."""
    return _translate(hf_hook_name, source=0)


def hf_hook_name(transformer_lens_hook: str) -> str:
    """The inverse of `transformer_lens_hook_name`."""
    return _translate(transformer_lens_hook, source=1)


def as_transformer_lens_hook(hook_name: str) -> str:
    """`hook_name` in TransformerLens' spelling, whichever view it names."""
    try:
        hf_hook_name(hook_name)
    except ValueError:
        return transformer_lens_hook_name(hook_name)
    return hook_name


def hook_for_view(hook_name: str, model_class: str) -> str:
    """`hook_name` as a `model_class` model spells it (`HookedTransformer` or
    `AutoModelForCausalLM`); a name with no counterpart comes back unchanged."""
    try:
        tl_name = as_transformer_lens_hook(hook_name)
    except ValueError:
        return hook_name
    return tl_name if model_class == "HookedTransformer" else hf_hook_name(tl_name)


def same_activation(hook_a: str, hook_b: str) -> bool:
    """Whether two hook names, of either view, read the same activation."""
    if hook_a == hook_b:
        return True
    try:
        return as_transformer_lens_hook(hook_a) == as_transformer_lens_hook(hook_b)
    except ValueError:  # a hook with no counterpart is only itself
        return False


def hook_layer(hook_name: str) -> int | None:
    """The block index a hook name of either view refers to (None for embeddings)."""
    found = re.search(r"(?:layers|blocks)\.(\d+)", hook_name)
    return int(found.group(1)) if found else None


@contextmanager
def local_model_names_accepted() -> Iterator[None]:
    """Within the block, TransformerLens accepts a local model directory (one holding
    `config.json`) as an official model name and returns it unchanged; other names go
    through its usual lookup. Restored on exit, also on error."""
    from transformer_lens import loading_from_pretrained as loading

    original = loading.get_official_model_name

    def get_official_model_name(model_name: str) -> str:
        if (Path(model_name) / "config.json").is_file():
            return model_name
        return original(model_name)

    loading.get_official_model_name = get_official_model_name
    try:
        yield
    finally:
        loading.get_official_model_name = original


class BlocksOnlyTransformer(HookedTransformer):
    """The first blocks of a model, for reading hooks: its forward pass stops after
    its last block (no final norm, no unembedding, which on a small model costs
    more than a few blocks) and returns the residual stream [batch, pos, d_model].

    Every hook of the kept blocks reads what the full model's does.
    """

    @override
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("stop_at_layer", self.cfg.n_layers)
        return super().forward(*args, **kwargs)


def load_hooked_transformer(
    model_dir: str | Path,
    hf_model: Any | None = None,
    tokenizer: Any | None = None,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
    n_blocks: int | None = None,
) -> HookedTransformer:
    """A `HookedTransformer` of the local checkpoint `model_dir`, without weight
    processing (no LayerNorm folding or centring), so its hooks read the same
    activations as the `AutoModelForCausalLM`'s modules.

    Args:
        model_dir: Local Hugging Face model directory (config, weights, tokenizer).
        hf_model: The already-loaded `AutoModelForCausalLM` of `model_dir`, to reuse
            its weights; loaded from `model_dir` when None (and then freed).
        tokenizer: Its tokenizer; loaded from `model_dir` when None.
        device: Where the view lives.
        dtype: Its parameter dtype.
        n_blocks: Keep only the first `n_blocks` blocks and return a
            `BlocksOnlyTransformer` (no logits); None keeps the whole model.

    The model's `cfg.model_name` is the directory's name (SAEBench caches probes
    under it).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = str(Path(model_dir).resolve())
    if not (Path(model_dir) / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir} is not a local model directory.")
    if tokenizer is None:
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if hf_model is None:
        hf_model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
    view_class = HookedTransformer if n_blocks is None else BlocksOnlyTransformer
    with local_model_names_accepted():
        model = view_class.from_pretrained_no_processing(
            model_dir,
            hf_model=hf_model,
            tokenizer=tokenizer,
            device=device,
            dtype=dtype,
            first_n_layers=n_blocks,
        )
    model.eval()
    return model
