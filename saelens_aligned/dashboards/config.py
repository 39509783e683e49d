"""The settings of `saelens-aligned dashboard`, apart from the pipeline (the CLI
reads their defaults without importing torch or a model)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class DashboardConfig:
    """Settings of `saelens-aligned dashboard`.

    Attributes:
        saes: Each SAE: a SAELens SAE folder, `RELEASE/SAE_ID`, a release with one
            SAE, or a Hugging Face repo id. The first SAE on each hook is the
            reference the others on that hook are compared with.
        features: How many of the reference's features get pages (its first
            `features` latents, unless `feature_ids` names them).
        feature_ids: The reference's features to show; None: 0..features-1.
        out: The output folder (`index.html` and one page per SAE).
        model: Local model directory; None: the embedded SmolLM2-135M-Instruct.
        dataset: Text to read (held-out part): local .txt/.md/.jsonl files or
            folders, comma-separated, or a named corpus; None: the embedded corpus.
        text_column: The dataset column holding the text.
        tokens: Tokens read (whole sequences of `context_size`).
        context_size: Tokens per sequence.
        minibatch_size: Sequences per model call.
        device: Where the model and SAEs run.
        cache_dir: Root of the model/corpus cache (default $SAELENS_ALIGNED_CACHE).
    """

    saes: tuple[str, ...]
    features: int = 20
    feature_ids: tuple[int, ...] | None = None
    out: str = "dashboards"
    model: str | None = None
    dataset: str | None = None
    text_column: str = "text"
    tokens: int = 16_384
    context_size: int = 128
    minibatch_size: int = 16
    device: str = "cpu"
    cache_dir: str | None = None

    def shown_features(self) -> tuple[int, ...]:
        return self.feature_ids or tuple(range(self.features))
