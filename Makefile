# Two commands on a fresh machine:  `make run`  (set-up + the main job)  and  `make test`
# (set-up + the fast tests; `make test-slow` and `make test-all` below).
# Set-up is a local virtualenv (.venv) with a CPU build of PyTorch pinned by
# constraints/cpu.txt; on a GPU machine install into your CUDA PyTorch instead
# (README: "On a GPU machine").  `make run` installs attnperf and what `attnperf run`
# needs, nothing more; `make setup` (and every target that runs tests) adds the test
# tools and Triton to the same venv.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.attnperf-installed
RUN_STAMP := $(VENV)/.attnperf-run-installed

.PHONY: setup run lint test test-slow test-all mutation mutation-full continuous publish docs clean

setup: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): pyproject.toml constraints/cpu.txt | $(PY)
	$(PY) -m pip install -q -c constraints/cpu.txt -e '.[test,triton]'
	touch $@ $(RUN_STAMP)

$(RUN_STAMP): pyproject.toml constraints/cpu.txt | $(PY)
	$(PY) -m pip install -q -c constraints/cpu.txt -e .
	touch $@

run: $(RUN_STAMP)
	$(VENV)/bin/attnperf run

# ruff (pyflakes, bugbear, pyupgrade, import order, line length) and mypy (strict on
# model/, analysis/, io/): [tool.ruff] and [tool.mypy] in pyproject.toml.
lint: setup
	$(VENV)/bin/ruff check
	$(VENV)/bin/mypy

# Test tiers (pyproject.toml [tool.pytest.ini_options]: strict markers and config, warnings
# as errors, a time limit per test, the 25 slowest listed).  `test`: every test but those
# marked slow, the tier to run before every commit; `test-slow`: the slow tier alone (real asv
# runs on temporary clones, the wheel in a fresh venv, the full default `attnperf run`);
# `test-all`: both, the whole suite.  CI (.ci/run) runs `test`, then `test-slow`.
# Each tier runs on every core (pytest-xdist, at most 4 workers; --dist loadfile keeps a test
# file on one worker: its module fixtures are made once); `PYTEST_WORKERS=0 make test` runs in
# one process.
PYTEST_WORKERS ?= auto
XDIST := -n $(PYTEST_WORKERS) --maxprocesses 4 --dist loadfile
test: setup
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m pytest -q $(XDIST) -m "not slow"

test-slow: setup
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m pytest -q $(XDIST) -m slow

test-all: setup
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m pytest -q $(XDIST)

# Mutation testing of the verdict and number code (tests/_mutation.py): prints the
# score and every surviving mutant; fails under 90 %.  CI runs `mutation`;
# `mutation-full` adds every other function of the same modules.
mutation: setup
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) tests/_mutation.py

mutation-full: setup
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) tests/_mutation.py --full

# Compare this branch with main the way CI does (regressions only on gated benchmarks; each
# commit measured twice, interleaved; per-benchmark thresholds when `attnperf calibrate` wrote
# results/$(MACHINE)/attnperf-thresholds.json).  Output: .asv/continuous/summary.md.
MACHINE ?= $(shell hostname)
continuous: setup
	PATH="$(abspath $(VENV))/bin:$$PATH" ATTNPERF_TORCH_PYTHON="$(abspath $(PY))" \
	  $(VENV)/bin/attnperf ci bench --base main --head HEAD --machine $(MACHINE) --device cpu \
	  --factor 1.5 --rounds 2 --out .asv/continuous

# The documentation site (mkdocs.yml): the docs extra into .venv, then a strict build (any
# warning, a broken link or anchor included, fails; NO_MKDOCS_2_WARNING silences the theme's
# end-of-life banner, which is no warning of the build).  Output: $(DOCS_OUT)/index.html.
DOCS_OUT   ?= build/docs-site
DOCS_STAMP := $(VENV)/.attnperf-docs-installed

$(DOCS_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install -q -c constraints/cpu.txt -e '.[docs]'
	touch $@

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict -d $(DOCS_OUT)

clean:
	rm -rf $(VENV) .asv build dist src/*.egg-info mutants mutants-run.log
