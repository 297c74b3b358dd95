# sics: `make paper` regenerates every table and figure; `make test` runs the tests.
# Both create the virtual environment (.venv) on first use.
PROFILE ?= auto
DATA ?=
WEIGHTS ?=
ENGINE ?= papermill
PYTHON ?= python3
# torch/torchvision builds: pinned to the ones this project is tested with; elsewhere override,
# e.g. make test TORCH_SPEC="torch torchvision" (or a CUDA build from pytorch.org's index).
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1

VENV := .venv
PY := $(VENV)/bin/python
ifneq ($(DATA),)
export SICS_DATA := $(abspath $(DATA))
endif
ifneq ($(WEIGHTS),)
export SICS_WEIGHTS := $(abspath $(WEIGHTS))
endif

.PHONY: paper test unit nbval lint bench strip clean-ci help

help:
	@echo "make paper [PROFILE=paper|scratch|quick|ci|auto] [DATA=path] [WEIGHTS=path] [ENGINE=papermill|inline]"
	@echo "make test     unit tests + nbval over the notebooks (ci profile)"
	@echo "make bench    throughput/FLOPs/MFU of the profile's model"

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH_SPEC) 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -m pip install -q -e '.[dev]' 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -c "import torch, torchvision, timm, papermill, nbval, seaborn"
	touch $@

paper: $(VENV)/.installed
	$(PY) -m sics.paper --profile $(PROFILE) --engine $(ENGINE)

test: unit nbval

unit: $(VENV)/.installed
	SICS_PROFILE=ci HF_HUB_OFFLINE=1 $(PY) -m pytest -q --durations=8 tests

nbval: $(VENV)/.installed
	SICS_PROFILE=ci HF_HUB_OFFLINE=1 MPLBACKEND=Agg $(PY) -m pytest -q --nbval-lax -p no:cacheprovider notebooks

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check sics tests

bench: $(VENV)/.installed
	$(PY) -m sics.bench --profile $(PROFILE)

strip: $(VENV)/.installed
	$(VENV)/bin/nbstripout notebooks/*.ipynb

clean-ci:
	rm -rf figures/ci figures/quick
