"""Arms of a sweep: init controls, labels and run ids, the learning-rate grid, and
the training recipe each run gets (seeds, AuxK's dead window)."""

from dataclasses import replace

import pytest
import torch
from sae_lens.registry import get_sae_training_class

from benchmarks.sweeps.config import ArchitectureSweep, SweepConfig, SweepConfigError
from benchmarks.sweeps.lr_grid import expand_lr_grid
from benchmarks.sweeps.runs import (
    arm_labels,
    expand_runs,
    initial_sae,
    middle_value,
)
from saelens_aligned.alignment import ALIGNMENT_FORMS
from saelens_aligned.architectures import aligned_architectures, base_architecture
from saelens_aligned.pipeline.training import TrainingSettings
from tests.conftest import TEST_SHARED_FIELDS, step_input

BASES = sorted(
    {base_architecture(get_sae_training_class(a)[1]) for a in aligned_architectures()}
)


def sparsity_of(architecture: str) -> tuple[str, float]:
    from saelens_aligned.sae_config import sparsity_field

    field = sparsity_field(get_sae_training_class(architecture)[1])
    return field, float(TEST_SHARED_FIELDS.get(field, 1.0))


def config(*arms: ArchitectureSweep, **overrides) -> SweepConfig:
    return replace(
        SweepConfig(name="t", architectures=list(arms), d_sae=[48], seeds=[0, 1, 2]),
        **overrides,
    )


@pytest.mark.parametrize("form", ALIGNMENT_FORMS)
@pytest.mark.parametrize("base", BASES)
def test_init_control_computes_the_aligned_sae_function_at_step_0(base, form):
    from saelens_aligned.architectures import aligned_variant

    param, value = sparsity_of(base)
    arms = (
        ArchitectureSweep(base, param, [value], init_from=form),
        ArchitectureSweep(aligned_variant(base), param, [value], alignments=[form]),
        ArchitectureSweep(base, param, [value]),
    )
    control, aligned, stock = (
        runs[0]
        for runs in ([r for r in expand_runs(config(a)) if r.seed == 1] for a in arms)
    )
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(0)) * 3
    saes = {
        name: initial_sae(run, d_in=16, training_steps=100)
        for name, run in (("control", control), ("aligned", aligned), ("stock", stock))
    }
    assert type(saes["control"]).__name__ == type(saes["stock"]).__name__
    outputs = {
        name: sae.training_forward_pass(step_input(sae, x)).sae_out
        for name, sae in saes.items()
    }
    torch.testing.assert_close(outputs["control"], outputs["aligned"])
    for key, tensor in saes["aligned"].state_dict().items():
        torch.testing.assert_close(saes["control"].state_dict()[key], tensor)
    # ... and the control really starts elsewhere than SAELens' own init.
    assert not torch.allclose(saes["control"].W_dec, saes["stock"].W_dec)


def test_a_seed_sets_the_initialisation_only():
    run = expand_runs(config(ArchitectureSweep("topk", "k", [4])))[0]
    a = initial_sae(run, 16, 100)
    b = initial_sae(run, 16, 100)
    c = initial_sae(replace(run, seed=run.seed + 1), 16, 100)
    torch.testing.assert_close(a.W_enc, b.W_enc)
    assert not torch.allclose(a.W_enc, c.W_enc)
    sweep = config(ArchitectureSweep("topk", "k", [4]), activation_seed=7)
    assert {sweep.training(s, 1e-3).seed for s in (0, 1, 2)} == {7}
    varied = replace(sweep, seed_varies_data=True)
    assert [varied.training(s, 1e-3).seed for s in (0, 1, 2)] == [0, 1, 2]


def test_labels_name_what_differs_between_arms_and_ids_are_unique():
    sweep = config(
        ArchitectureSweep("topk", "k", [4, 8]),
        ArchitectureSweep("topk", "k", [4, 8], init_from="tied"),
        ArchitectureSweep("aligned_topk", "k", [4, 8]),
        ArchitectureSweep(
            "jumprelu", "l0_coefficient", [1.0], sae_kwargs={"jumprelu_bandwidth": 0.1}
        ),
        ArchitectureSweep(
            "jumprelu", "l0_coefficient", [1.0], sae_kwargs={"jumprelu_bandwidth": 0.2}
        ),
    )
    assert arm_labels(sweep) == [
        ["topk"],
        ["topk[init=tied]"],
        ["aligned_topk[tied]", "aligned_topk[projected]"],
        ["jumprelu[jumprelu_bandwidth=0.1]"],
        ["jumprelu[jumprelu_bandwidth=0.2]"],
    ]
    runs = expand_runs(sweep)
    assert len({r.run_id for r in runs}) == len(runs)
    assert "topk-init-tied-k4-d48-lr0.0005-s0" in {r.run_id for r in runs}


def test_two_arms_with_one_label_are_a_config_error_naming_both():
    sweep = config(
        ArchitectureSweep("topk", "k", [4]),
        ArchitectureSweep("standard", "l1_coefficient", [1.0]),
        ArchitectureSweep("topk", "k", [8]),
    )
    with pytest.raises(
        SweepConfigError, match=r"architectures\[0\] and architectures\[2\]"
    ):
        arm_labels(sweep)


def test_the_lr_grid_runs_each_arm_once_per_rate_and_shares_the_chosen_run():
    sweep = config(
        ArchitectureSweep("topk", "k", [4, 8, 16]),
        ArchitectureSweep("aligned_topk", "k", [4, 8, 16], alignments=["tied"]),
        ArchitectureSweep("standard", "l1_coefficient", [1.0, 2.0, 3.0], lr=1e-3),
        lr_grid=[1e-4, 3e-4, 1e-3],
    )
    grid = expand_lr_grid(sweep)
    # The arm with its own lr is not searched.
    assert {r.label for r in grid} == {"topk", "aligned_topk[tied]"}
    assert {(r.label, r.lr) for r in grid} == {
        (label, lr) for label in ("topk", "aligned_topk[tied]") for lr in sweep.lr_grid
    }
    assert {r.sparsity_value for r in grid} == {middle_value([4, 8, 16])} == {8}
    assert {r.seed for r in grid} == {0}
    main = expand_runs(sweep, {"topk": 3e-4, "aligned_topk[tied]": 1e-3})
    assert {r.lr for r in main if r.label == "topk"} == {3e-4}
    assert {r.lr for r in main if r.label == "standard"} == {1e-3}
    shared = {r.run_id for r in grid} & {r.run_id for r in main}
    assert shared == {
        "topk-k8-d48-lr0.0003-s0",
        "aligned_topk-tied-k8-d48-lr0.001-s0",
    }


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("lr_grid", [1e-4, 3e-4], "at least 3"),
        ("lr_grid", [1e-4, 2e-4, 3e-4], "spanning at least 10x"),
        ("lr_metric", "loudness", "lr_metric"),
        ("sparse_stock_step", "yes", "sparse_stock_step"),
    ],
)
def test_bad_sweep_settings_name_the_field(field, value, message):
    from benchmarks.sweeps.config_checks import validate_sweep_config

    sweep = config(ArchitectureSweep("topk", "k", [4]), **{field: value})
    with pytest.raises(SweepConfigError, match=message):
        validate_sweep_config(sweep)


@pytest.mark.parametrize(
    "arm,message",
    [
        (
            ArchitectureSweep("aligned_topk", "k", [4], init_from="tied"),
            "no aligned variant",
        ),
        (ArchitectureSweep("topk", "k", [4], init_from="rotated"), "choose from"),
        (ArchitectureSweep("topk", "k", [4], lr=-1.0), "positive number"),
    ],
)
def test_bad_arms_name_the_field(arm, message):
    from benchmarks.sweeps.config_checks import validate_sweep_config

    with pytest.raises(SweepConfigError, match=message):
        validate_sweep_config(config(arm))


@pytest.mark.parametrize(
    "tokens,batch,window",
    [(204_800, 512, 100), (307_200, 1024, 75), (4096 * 10_000, 4096, 1000)],
)
def test_the_dead_feature_window_fits_in_the_run(tokens, batch, window):
    settings = TrainingSettings(training_tokens=tokens, train_batch_size_tokens=batch)
    assert settings.dead_window == window
    assert settings.dead_window <= settings.training_steps
    assert settings.to_dict()["dead_feature_window"] == window


def test_a_sweep_restricted_to_bases_keeps_their_arms_and_names_a_bad_one():
    full = config(
        ArchitectureSweep("topk", "k", [4, 8]),
        ArchitectureSweep("topk", "k", [4, 8], init_from="tied"),
        ArchitectureSweep("aligned_topk", "k", [4, 8]),
        ArchitectureSweep("standard", "l1_coefficient", [1.0, 2.0]),
        ArchitectureSweep("aligned", "l1_coefficient", [1.0, 2.0]),
    )
    kept = full.restricted_to(["topk"])
    assert [(a.architecture, a.init_from) for a in kept.architectures] == [
        ("topk", None),
        ("topk", "tied"),
        ("aligned_topk", None),
    ]
    assert {r.architecture for r in expand_runs(kept)} == {"topk", "aligned_topk"}
    with pytest.raises(SweepConfigError, match="--bases.*gated"):
        full.restricted_to(["gated"])
    with pytest.raises(SweepConfigError, match="--bases.*nonexistent"):
        full.restricted_to(["nonexistent"])


def test_main_runs_start_with_every_arms_middle_sparsity():
    from benchmarks.sweeps.runs import middle_sparsity_first

    runs = expand_runs(
        config(
            ArchitectureSweep("topk", "k", [4, 8, 16]),
            ArchitectureSweep("aligned_topk", "k", [4, 8, 16], alignments=["tied"]),
        )
    )
    ordered = middle_sparsity_first(runs)
    assert sorted(r.run_id for r in ordered) == sorted(r.run_id for r in runs)
    first = ordered[:6]
    assert {r.sparsity_value for r in first} == {8}
    assert {r.label for r in first} == {"topk", "aligned_topk[tied]"}
    # seed by seed: every arm's seed 0 before any arm's seed 1
    assert [r.seed for r in first] == [0, 0, 1, 1, 2, 2]
    assert [r.label for r in first[:2]] == ["topk", "aligned_topk[tied]"]


def test_a_near_tie_in_the_grid_goes_to_the_sparser_rate_for_penalty_arms():
    from benchmarks.sweeps.lr_rule import LR_TIE_TOLERANCE, best_learning_rate

    # The cpu preset's standard[init=projected] grid: 3e-4 wins explained
    # variance by 0.0001 only because it leaves 1.7x the active latents.
    scores = {3e-4: 0.93149, 1e-3: 0.93142, 3e-3: 0.9159, 1e-2: 0.8608}
    l0 = {3e-4: 156.7, 1e-3: 92.0, 3e-3: 45.7, 1e-2: 10.3}
    assert best_learning_rate(scores) == 3e-4
    assert best_learning_rate(scores, l0) == 1e-3
    # A lead larger than the tolerance is kept, however dense.
    clear = {**scores, 3e-4: 0.93142 + 2 * LR_TIE_TOLERANCE}
    assert best_learning_rate(clear, l0) == 3e-4
    # NaN scores (a collapsed run) never win.
    assert best_learning_rate({1e-3: float("nan"), 3e-3: 0.5}, None) == 3e-3


def test_only_penalty_set_sparsity_breaks_grid_ties_by_l0():
    from benchmarks.sweeps.lr_rule import sparsity_set_by_penalty

    runs = expand_runs(
        config(
            ArchitectureSweep("topk", "k", [4, 8, 16]),
            ArchitectureSweep("standard", "l1_coefficient", [1, 2, 4]),
        )
    )
    assert {r.architecture: sparsity_set_by_penalty(r) for r in runs} == {
        "topk": False,
        "standard": True,
    }


def test_calibration_specs_name_arms_as_sweep_labels_do():
    from benchmarks.experiments.calibrate_l0 import parse_spec

    run = parse_spec("gated[init=projected,lr=0.003]:l1_coefficient:4", 64, 0, 1e-3)
    assert (run.architecture, run.init_from, run.alignment) == (
        "gated",
        "projected",
        None,
    )
    assert (run.lr, run.sparsity_value) == (0.003, 4.0)
    run = parse_spec(
        "aligned_jumprelu[tied,jumprelu_init_threshold=0.5,pre_act_loss_coefficient=3e-6,"
        "jumprelu_ste_to_input=True]:l0_coefficient:2",
        64,
        0,
        1e-3,
    )
    assert run.alignment == "tied" and run.lr == 1e-3
    assert run.sae_fields() == {
        "l0_coefficient": 2.0,
        "jumprelu_init_threshold": 0.5,
        "pre_act_loss_coefficient": 3e-6,
        "jumprelu_ste_to_input": True,
        "alignment": "tied",
    }


@pytest.mark.parametrize("init_from", [None, "tied", "projected"])
@pytest.mark.parametrize("base", ["topk", "batchtopk"])
def test_the_sparse_stock_step_starts_from_the_dense_arms_weights(base, init_from):
    run = expand_runs(config(ArchitectureSweep(base, "k", [4], init_from=init_from)))[0]
    dense = initial_sae(run, 16, 100)
    sparse = initial_sae(run, 16, 100, sparse_stock_step=True)
    assert sparse.cfg.architecture() == f"sparse_{base}"
    assert type(dense).__name__ != type(sparse).__name__
    for key, tensor in dense.state_dict().items():
        torch.testing.assert_close(sparse.state_dict()[key], tensor, atol=0, rtol=0)


def test_the_sparse_stock_step_leaves_other_bases_alone():
    run = expand_runs(config(ArchitectureSweep("standard", "l1_coefficient", [4])))[0]
    assert initial_sae(run, 16, 100, sparse_stock_step=True).cfg.architecture() == (
        "standard"
    )


@pytest.mark.parametrize("base", ["topk", "batchtopk", "standard", "gated"])
def test_tied_and_its_fair_control_compute_one_function_at_step_0(base):
    """The fair control of `tied` (the base from the balanced init) shares its
    directions and its step-0 reconstruction; only the scale of the free weights
    (encoder norm 0.1 vs 1, decoder 10 vs 1) and the constraint differ."""
    from saelens_aligned.architectures import aligned_variant

    param, value = sparsity_of(base)
    arms = (
        ArchitectureSweep(base, param, [value], init_from="projected"),
        ArchitectureSweep(aligned_variant(base), param, [value], alignments=["tied"]),
    )
    fair, tied = (
        initial_sae([r for r in expand_runs(config(a)) if r.seed == 1][0], 16, 100)
        for a in arms
    )
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(0)) * 3
    out = [s.training_forward_pass(step_input(s, x)).sae_out for s in (fair, tied)]
    torch.testing.assert_close(out[0], out[1], atol=1e-4, rtol=1e-4)
    enc = [s.W_enc / s.W_enc.norm(dim=0, keepdim=True) for s in (fair, tied)]
    torch.testing.assert_close(enc[0], enc[1])
    assert fair.W_enc.norm(dim=0).mean().item() == pytest.approx(1.0, rel=1e-4)
    assert tied.W_enc.norm(dim=0).mean().item() == pytest.approx(0.1, rel=1e-4)
