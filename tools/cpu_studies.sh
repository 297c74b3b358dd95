#!/usr/bin/env bash
# The CPU studies still to finish for issues 22 and 23, in order of value; every step resumes
# where it stopped (rows are keyed, per-image results cached), so rerun the script after any
# interruption. Run it alone on the cores:
#   SICS_DATA=/path/to/cifar10-jpeg.tar.gz nohup tools/cpu_studies.sh > cpu_studies.log 2>&1 &
# It writes rows, per-image results and calibration statistics; committing them (and switching the
# profiles to the new seed counts) is a separate, reviewed step (docs/results-log.md).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${SICS_DATA:?set SICS_DATA to the CIFAR-10 source}"
export OMP_WAIT_POLICY=PASSIVE  # no spinning threads if something else wakes up on the cores
PY=${PYTHON:-.venv/bin/python}
paper() { "$PY" -m sics.cli.paper --engine inline "$@"; }
# 1. the criteria study (notebook 09) on the reference ViT, then beside it the ResNet, with the
#    token study's 10 seeds (07) between them, being the cheapest to finish
paper --profile reference --only 09 --set arch=""
paper --profile reference --only 07 --set n_seeds=10
paper --profile reference --only 09 --set arch=resnet
# 2. the main grid at 20 seeds, the ResNet's (08) first, being the cheaper; then the reference ViT's
paper --profile reference --only 08 --set n_seeds=20
paper --profile reference --only 02,03 --set n_seeds=20
