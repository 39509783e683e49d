"""`saelens-aligned train ...`: SAELens' own training CLI, plugin loaded.

Every SAELens flag works unchanged; `--architecture` also offers the aligned
variants, because SAELens builds its choices from the registry we extend. One
default differs: `--dataset_trust_remote_code` is false unless passed (SAELens
defaults it to true, which lets a Hugging Face dataset run its own loading
script); `--dataset_trust_remote_code true` turns it back on.
"""

import argparse
import signal
import sys
from collections.abc import Sequence
from typing import Any

from sae_lens.config import LanguageModelSAERunnerConfig
from sae_lens.llm_sae_training_runner import (
    LanguageModelSAETrainingRunner,
    _parse_cfg_args,
)
from sae_lens.registry import SAE_TRAINING_CLASS_REGISTRY
from sae_lens.training._interruption import InterruptedException, interrupt_callback
from typing_extensions import override

import saelens_aligned  # noqa: F401  (registers the aligned architectures)
from saelens_aligned.errors import InputError, exit_on_input_error
from saelens_aligned.io.validation import validate_runner_config
from saelens_aligned.p_anneal import PAnnealTrainingSAEConfig


def check_architecture_arg(args: Sequence[str]) -> None:
    """Fail before any model loads when --architecture names nothing registered."""
    for i, arg in enumerate(args):
        value = None
        if arg == "--architecture" and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith("--architecture="):
            value = arg.split("=", 1)[1]
        if value is not None and value not in SAE_TRAINING_CLASS_REGISTRY:
            raise InputError(
                f"--architecture {value!r} is not a registered SAELens "
                f"architecture. Valid choices: {sorted(SAE_TRAINING_CLASS_REGISTRY)}."
            )


# Flags whose default we change, and the value given when the user passes none.
SAFER_DEFAULTS = {"--dataset_trust_remote_code": "false"}


def with_safer_defaults(args: Sequence[str]) -> list[str]:
    """`args` with `SAFER_DEFAULTS` put in front. argparse keeps the last value
    of a repeated flag, so any value the user passes (including an abbreviated
    flag such as `--dataset_trust`) still wins. No arguments stays no arguments,
    which SAELens answers with --help."""
    args = list(args)
    if not args:
        return args
    defaults = [item for pair in SAFER_DEFAULTS.items() for item in pair]
    return defaults + args


def check_p_anneal_run_length(cfg: LanguageModelSAERunnerConfig[Any]) -> None:
    """p-annealing spreads its schedule over `p_anneal_total_steps`, which the SAE
    config must be told; refuse a run whose real length differs."""
    sae_cfg = cfg.sae
    if (
        isinstance(sae_cfg, PAnnealTrainingSAEConfig)
        and sae_cfg.p_anneal_total_steps != cfg.total_training_steps
    ):
        raise InputError(
            f"--p_anneal_total_steps {sae_cfg.p_anneal_total_steps} does not "
            f"match this run's {cfg.total_training_steps} training steps "
            "(training_tokens // train_batch_size_tokens); set it to "
            f"{cfg.total_training_steps}."
        )


class CheckpointOnInterruptRunner(LanguageModelSAETrainingRunner):
    """SAELens' runner, except that Ctrl-C / SIGTERM saves a full checkpoint.

    SAELens' own interrupt handler (6.54) only writes the activation-store state
    and runner config, into a folder it never creates, so the SAE weights and
    trainer state are lost. `SAETrainer.save_checkpoint` writes all of them and
    then calls the runner's own hook, so this override is the whole fix.
    """

    @override
    def run_trainer_with_interruption_handling(self, trainer: Any) -> Any:
        previous = {
            sig: signal.signal(sig, interrupt_callback)
            for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            return trainer.fit()
        except (KeyboardInterrupt, InterruptedException):
            if self.cfg.checkpoint_path is not None:
                trainer.save_checkpoint(checkpoint_name=str(trainer.n_training_samples))
            raise
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def parse_runner_config(args: Sequence[str]) -> LanguageModelSAERunnerConfig[Any]:
    """The runner config the CLI would train with, checked; loads no model or data.

    SAELens' own parser (every flag, our safer defaults in front), then our checks.
    """
    check_architecture_arg(args)
    try:
        cfg = _parse_cfg_args(with_safer_defaults(args))
    except argparse.ArgumentError as e:
        # simple_parsing raises (not exits) on a bad value of a config flag.
        raise InputError(str(e)) from e
    except InputError:
        raise
    except ValueError as e:
        # SAELens' config checks (__post_init__) name the field in the message.
        raise InputError(f"SAELens rejects the config: {e}") from e
    validate_runner_config(cfg)
    check_p_anneal_run_length(cfg)
    return cfg


def main(args: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if args is None else args)
    with exit_on_input_error("saelens-aligned train"):
        cfg = parse_runner_config(args)
    try:
        CheckpointOnInterruptRunner(cfg=cfg).run()
    except (KeyboardInterrupt, InterruptedException):
        # SAELens has already written a checkpoint under checkpoint_path.
        where = cfg.checkpoint_path or "(no checkpoint_path: nothing saved)"
        print(
            f"Interrupted. Checkpoint saved under {where}; continue with "
            "--resume_from_checkpoint <that checkpoint folder>.",
            file=sys.stderr,
        )
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
