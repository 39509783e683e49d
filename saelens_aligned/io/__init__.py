"""Files in and out: atomic writes and directory swaps, SAE folders read safely,
pretrained SAEs and releases, and the checks of a training config that need no
model load. Names are re-exported here, so `saelens_aligned.io.load_sae_dir` and
`saelens_aligned.io.write_json_atomic` stay where they were."""

from saelens_aligned.io.files import (
    atomic_dir,
    atomic_file,
    replace_dir,
    save_figure_atomic,
    write_json_atomic,
    write_text_atomic,
)
from saelens_aligned.io.sae_dirs import (
    CorruptSAEError,
    CorruptWeightsError,
    NotSafetensorsError,
    check_sae_dir,
    check_safetensors,
    load_sae_dir,
    not_safetensors_error,
)

__all__ = [
    "CorruptSAEError",
    "CorruptWeightsError",
    "NotSafetensorsError",
    "atomic_dir",
    "atomic_file",
    "check_sae_dir",
    "check_safetensors",
    "load_sae_dir",
    "not_safetensors_error",
    "replace_dir",
    "save_figure_atomic",
    "write_json_atomic",
    "write_text_atomic",
]
