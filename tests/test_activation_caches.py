"""Several hooks' activation caches from one pass of the model are the caches each
hook gets alone."""

import json
from dataclasses import replace
from pathlib import Path

import datasets
import pytest

from saelens_aligned.pipeline.activations import (
    ensure_activation_cache,
    ensure_activation_caches,
)
from saelens_aligned.pipeline.models import load_model
from saelens_aligned.pipeline.source import Source, resolve_source

HOOKS = ["model.layers.1", "model.layers.4"]
TOKENS = 2048


@pytest.fixture(scope="module")
def text_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import inspect

    path = tmp_path_factory.mktemp("corpus")
    rows = [
        {"text": doc}
        for _, obj in sorted(vars(json).items())
        if (doc := inspect.getdoc(obj)) and len(doc) > 200
    ] * 4
    (path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def resolved_for(hook: str, text_dir: Path, activations: Path):
    return resolve_source(
        Source(
            hook=hook,
            dataset=str(text_dir),
            context_size=32,
            activations_dir=str(activations),
        )
    )


def test_one_pass_caches_every_hook_as_its_own_cache_would(text_dir, tmp_path):
    resolved = {h: resolved_for(h, text_dir, tmp_path / "shared") for h in HOOKS}
    some = next(iter(resolved.values()))
    model = load_model(
        some.source.model_class, some.model_name, HOOKS, some.source.device
    )
    passes = []
    original = model.run_with_cache

    def counted(*args, **kwargs):
        passes.append(kwargs.get("names_filter"))
        return original(*args, **kwargs)

    model.run_with_cache = counted
    shared = ensure_activation_caches(resolved, model, 576, TOKENS, seed=7)
    assert passes and all(names == HOOKS for names in passes)  # one pass, all hooks
    model.run_with_cache = original

    for hook in HOOKS:
        alone_resolved = replace(
            resolved[hook], activations_root=tmp_path / f"alone-{hook}"
        )
        alone = ensure_activation_cache(alone_resolved, model, 576, TOKENS, seed=7)
        assert shared[hook].name == alone.name  # the same cache key
        a, b = (datasets.load_from_disk(str(p)) for p in (shared[hook], alone))
        assert a.column_names == b.column_names and len(a) == len(b) > 0
        a.set_format("torch")
        b.set_format("torch")
        assert (a[hook] == b[hook]).all()
        assert (a["token_ids"] == b["token_ids"]).all()
    assert not list((tmp_path / "shared").glob(".shared-pass-*"))  # spool removed
    # A rerun finds the caches and runs nothing.
    passes.clear()
    model.run_with_cache = counted
    assert ensure_activation_caches(resolved, model, 576, TOKENS, seed=7) == shared
    assert passes == []


def test_two_jobs_needing_one_cache_build_it_once(text_dir, tmp_path, monkeypatch):
    """A sweep and a job beside it (say, a retraining for stability) ask for the
    same cache at once: one builds it, the other waits and reuses it, and neither
    clears the other's partial folder as stale."""
    import threading

    import saelens_aligned.pipeline.activations as activations

    resolved = resolved_for(HOOKS[0], text_dir, tmp_path)
    model = load_model(
        resolved.source.model_class, resolved.model_name, HOOKS[:1], "cpu"
    )
    builds = []
    original = activations._cache_runner

    def counted(*args, **kwargs):
        builds.append(threading.current_thread().name)
        return original(*args, **kwargs)

    monkeypatch.setattr(activations, "_cache_runner", counted)
    results, errors = {}, []

    def job(name: str) -> None:
        try:
            results[name] = ensure_activation_cache(resolved, model, 576, TOKENS, 7)
        except Exception as e:  # noqa: BLE001 - reported by the assert below
            errors.append(e)

    threads = [threading.Thread(target=job, args=(n,), name=n) for n in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(builds) == 1
    assert results["a"] == results["b"]
    assert datasets.load_from_disk(str(results["a"])).num_rows > 0
