"""The README's quickstart runs as written (with a smaller token budget)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def quickstart_code() -> str:
    text = README.read_text()
    section = text.split("## Quickstart", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]


def test_quickstart_is_readable():
    lines = quickstart_code().strip().splitlines()
    assert len(lines) <= 25
    assert max(len(line) for line in lines) <= 88


def test_readme_stays_short_and_its_links_exist():
    text = README.read_text()
    assert len(text) <= 12_500
    for target in re.findall(r"\]\(((?:docs|benchmarks)/[^)#]+)\)", text):
        assert (README.parent / target).exists(), target


def test_quickstart_trains_an_aligned_sae(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    code = quickstart_code().replace("training_tokens=200_000", "training_tokens=8192")
    exec(compile(code, str(README), "exec"), {})
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert abs(float(printed) - 1.0) < 1e-5
    assert (tmp_path / "output" / "cfg.json").exists()
