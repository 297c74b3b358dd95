# sics: `make paper` regenerates every table and figure; `make test` runs the tests.
# Both create the virtual environment (.venv) on first use. `make` alone lists the targets.
PROFILE ?= auto
DATA ?=
TEXT ?=
WEIGHTS ?=
ENGINE ?= papermill
VERBOSE ?=
RETRAIN ?=
RUN ?=
N ?=
UNIT ?=
PRECISION ?=
ONLY ?=
SET ?=
EXECUTOR ?=
CHUNK ?=
SLURM_PARTITION ?=
SLURM_TIME ?=
SLURM_GPUS ?=
SLURM_CPUS ?=
PYTHON ?= python3
# torch/torchvision builds: pinned to the ones this project is tested with; elsewhere override,
# e.g. make test TORCH_SPEC="torch torchvision" (or a CUDA build from pytorch.org's index).
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1

VENV := .venv
PY := $(VENV)/bin/python
KV_VENV := .venv-kv
KV_PY := $(KV_VENV)/bin/python
ifneq ($(DATA),)
export SICS_DATA := $(abspath $(DATA))
endif
ifneq ($(TEXT),)
export SICS_TEXT := $(abspath $(TEXT))
endif
ifneq ($(RETRAIN),)
export SICS_RETRAIN := $(RETRAIN)
endif
# sweeps as jobs (sics.study.executor): EXECUTOR=local|slurm, and the cluster settings
$(foreach v,EXECUTOR CHUNK SLURM_PARTITION SLURM_TIME SLURM_GPUS SLURM_CPUS,$(if $($(v)),$(eval export SICS_$(v) := $($(v)))))
ifneq ($(WEIGHTS),)
export SICS_WEIGHTS := $(abspath $(WEIGHTS))
endif
# What `make clean` removes: the smoke profiles' outputs and the caches (decoded data,
# checkpoints, predictions); never .venv or the committed full-scale figures.
CLEAN := figures/quick figures/ci figures/ci_lm figures/quick-tokens figures/ci-tokens figures/ci_resnet figures/resnet/fig_units_quick.png figures/resnet/fig_units_quick.pdf .cache site

.DEFAULT_GOAL := help
.PHONY: help kv-env kv-test paper verify site test unit e2e nbval lint bench strip clean clean-ci

help:
	@echo 'targets:'
	@echo '  make paper    run notebooks 01-09: every table and figure -> figures/<profile>/'
	@echo '  make verify   re-evaluate a random sample of the committed results (needs DATA) and compare'
	@echo '  make site     a static HTML report of the committed runs -> site/index.html (offline)'
	@echo '  make test     everything: the unit tests, the end-to-end tests, nbval over the notebooks (ci profile), then the KV tests'
	@echo '  make unit     the fast tier: every test not marked e2e'
	@echo '  make e2e      the end-to-end tests: make paper, the GPU dry run, compiles, subprocess runs'
	@echo '  make nbval    the notebooks under nbval only (ci profile; reads DATA)'
	@echo '  make bench    throughput, FLOPs and MFU of the profile model'
	@echo '  make lint     ruff over sics/ and tests/'
	@echo '  make strip    clear the notebook outputs before committing'
	@echo '  make kv-env   the KV-cache study'"'"'s environment (.venv-kv: transformers, kvpress) beside .venv'
	@echo '  make kv-test  the tests that need it (the LMs, kvpress on them, the KV unit and study; part of make test)'
	@echo '  make clean    remove $(CLEAN) (clean-ci: the same)'
	@echo '  make help     this list (the default target)'
	@echo 'variables, e.g. make paper PROFILE=quick DATA=~/cifar10:'
	@echo '  PROFILE     paper | scratch | reference | quick | ci | auto (default: with CUDA paper where its'
	@echo '              pretrained weights are here, else scratch; without CUDA reference once committed, else quick)'
	@echo '  DATA        CIFAR-10: torchvision root, image-folder tree or .tar.gz (default: $$SICS_DATA, else download)'
	@echo '  TEXT        the KV-cache study'"'"'s corpus: a folder of .txt files, or Jane Austen'"'"'s (r-cran-janeaustenr) (default: $$SICS_TEXT)'
	@echo '  WEIGHTS     pretrained ViT-Small file for PROFILE=paper (default: $$SICS_WEIGHTS, else the hub)'
	@echo '  ENGINE      papermill (default) | inline: the same cells in this process, no jupyter'
	@echo '  RETRAIN     1: train even where committed weights (figures/<profile>/weights.safetensors) exist'
	@echo '  VERBOSE     1: show everything the notebooks print, not only progress and summaries'
	@echo '  ONLY        make paper: some notebooks, e.g. 02,03 (09, the criteria study, runs on the ViT and on the ResNet; SET=arch=resnet only the ResNet)'
	@echo '  SET         make paper: notebook parameters NAME=VALUE (space-separated), e.g. SET="n_seeds=20 arch=resnet"'
	@echo '  EXECUTOR    inline (default) | local | slurm: a sweep'\''s pending rows as submitit jobs (docs/extending.md);'
	@echo '              CHUNK rows per job (20), SLURM_PARTITION, SLURM_TIME minutes (60), SLURM_GPUS (1), SLURM_CPUS (8)'
	@echo '  N           make verify: how many committed results to re-evaluate (default 10)'
	@echo '  RUN         make verify: the training run k to verify (figures/<profile>/runs/<k>/; default 0, the committed study)'
	@echo '  UNIT        make verify: the unit kind of the study (default: the profile default; e.g. tokens)'
	@echo '  PRECISION   make verify: auto (the bundle precision where fast here, else fp32) | bf16 | fp32'
	@echo '  TORCH_SPEC  the torch build pip installs into .venv (default: $(TORCH_SPEC))'
	@echo '  PYTHON      the interpreter that creates .venv (default: $(PYTHON))'
	@echo 'progress bars: off when CI is set or with SICS_PROGRESS=0'

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH_SPEC) -e '.[dev]' 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -c "import torch, torchvision, timm, papermill, nbval, seaborn"
	touch $@

# The KV-cache study's environment: the main one's packages plus transformers and kvpress (which
# pins pandas<3), in a venv of its own so that no version writing committed outputs moves. It reads
# .venv's packages (torch and the rest: a .pth adds that site directory after its own), so pip
# installs only what the kv extra adds, and pandas 2 here shadows .venv's pandas 3 without touching it.
$(KV_VENV)/.installed: pyproject.toml $(VENV)/.installed
	test -x $(KV_PY) || $(PYTHON) -m venv $(KV_VENV)
	echo "import site; site.addsitedir('$(abspath $(shell $(PY) -c "import sysconfig; print(sysconfig.get_paths()['purelib'])"))')" \
	  > "$$($(KV_PY) -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/_sics_main_env.pth"
	$(KV_PY) -m pip install -q -e '.[kv]' 2>&1 | grep -v "^WARNING: Location\|^  Not uninstalling\|^Can't uninstall" || true
	$(KV_PY) -c "import torch, transformers, kvpress, rdata, pandas; assert pandas.__version__ < '3'"
	touch $@

kv-env: $(KV_VENV)/.installed

# The tests that need the KV environment (they skip in .venv)
kv-test: $(KV_VENV)/.installed
	SICS_PROFILE=ci HF_HUB_OFFLINE=1 $(KV_PY) -m pytest -q -p no:cacheprovider tests/training/test_lm.py tests/units/test_kvpress.py \
	  tests/units/test_kv_positions.py tests/units/test_kv_study.py
	SICS_PROFILE=ci SICS_TEXT=$(abspath tests/corpus) HF_HUB_OFFLINE=1 MPLBACKEND=Agg $(KV_PY) -m pytest -q --nbval-lax \
	  -p no:cacheprovider notebooks/11_kv_cache.ipynb

paper: $(VENV)/.installed
	$(PY) -m sics.cli.paper --profile $(PROFILE) --engine $(ENGINE) $(if $(VERBOSE),--verbose) $(if $(ONLY),--only $(ONLY)) $(foreach s,$(SET),--set $(s))

# the language models' studies (PROFILE=lm) run in the KV environment: their model is transformers'
VERIFY_PY = $(if $(filter lm ci_lm,$(PROFILE)),$(KV_PY),$(PY))
verify: $(VENV)/.installed $(if $(filter lm ci_lm,$(PROFILE)),$(KV_VENV)/.installed)
	$(VERIFY_PY) -m sics.cli.verify --profile $(PROFILE) $(if $(RUN),--run $(RUN)) $(if $(N),--n $(N)) $(if $(UNIT),--unit $(UNIT)) $(if $(PRECISION),--precision $(PRECISION))

site: $(VENV)/.installed
	$(PY) -m sics.report.site --profile $(PROFILE)

test: unit e2e nbval kv-test

unit: $(VENV)/.installed
	SICS_PROFILE=ci HF_HUB_OFFLINE=1 $(PY) -m pytest -q --durations=8 -m "not e2e" tests

e2e: $(VENV)/.installed
	SICS_PROFILE=ci HF_HUB_OFFLINE=1 $(PY) -m pytest -q --durations=8 -m e2e tests

nbval: $(VENV)/.installed
	SICS_PROFILE=ci HF_HUB_OFFLINE=1 MPLBACKEND=Agg $(PY) -m pytest -q --nbval-lax -p no:cacheprovider notebooks

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check sics tests

bench: $(VENV)/.installed
	$(PY) -m sics.cli.bench --profile $(PROFILE)

strip: $(VENV)/.installed
	$(VENV)/bin/nbstripout notebooks/*.ipynb

clean:
	@removed=; for d in $(CLEAN); do \
		if [ -e "$$d" ]; then echo "removing $$d ($$(du -sh "$$d" | cut -f1))"; rm -rf "$$d"; removed=1; fi; \
	done; [ -n "$$removed" ] || echo "nothing to remove: $(CLEAN) are absent"; \
	echo "kept .venv and the committed figures"

clean-ci: clean
