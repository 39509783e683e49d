"""Workarounds for the versions sae-bench pins beside SAELens."""


def disable_datasets_torchvision_formatter() -> None:
    """datasets 3.6's torch formatter imports torchvision.io.VideoReader, which
    torchvision 0.29 (required by sae-bench) removed; SAELens reads cached
    activations through that formatter. Telling datasets that torchvision is
    absent skips the video path and changes nothing else."""
    try:
        import datasets
        import torchvision.io
    except ImportError:
        return
    if not hasattr(torchvision.io, "VideoReader"):
        datasets.config.TORCHVISION_AVAILABLE = False
