# robustify — `make run` (set up + embedded default pipeline) and `make test` (set up + all tests).
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# A data mirror next to the checkout (../shared/data) is used when present and none is set;
# without one, data and weights are downloaded from their canonical sources.
ifeq ($(origin ROBUSTIFY_DATA_MIRROR), undefined)
  ifneq ($(wildcard ../shared/data/MANIFEST.json),)
    export ROBUSTIFY_DATA_MIRROR := $(abspath ../shared/data)
  endif
endif

.PHONY: setup run smoke test test-fast bench lint clean

setup: $(STAMP)  ## idempotent: venv + project + test extras

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $@

run: setup  ## the embedded default pipeline end to end
	snakemake --cores all

smoke: setup  ## the whole DAG on tiny settings (minutes)
	snakemake --cores all --configfile workflow/presets/smoke.yaml

test: setup  ## the whole test suite (slow tests included)
	pytest

test-fast: setup
	pytest -m "not slow"

# Each benchmark writes benchmarks/out/<name>.json; collect.py merges them into results/benchmarks.json
# (every ratio in one table). Run by hand: teacher_schemes.py (a training study, hours),
# corruptions_device_check.py and device.py (GPU only, CPU vs CUDA; device.py's benchmarks/out/device.json
# is merged too), precision.py (float32 vs bfloat16 on a finished run's models; merged too).
BENCHMARKS ?= corruptions distill inference baselines lp_image_size
bench: setup  ## benchmarks → results/benchmarks.json
	@mkdir -p benchmarks/out
	@for b in $(BENCHMARKS); do echo "== benchmarks/$$b.py"; $(PY) benchmarks/$$b.py || exit 1; done
	$(PY) benchmarks/collect.py

lint: setup
	snakemake --lint

clean:
	rm -rf .snakemake logs results/metrics results/checkpoints results/eval
