#!/usr/bin/env bash
# Run the `reference` study (make paper PROFILE=reference) in the background, alone on the cores.
#
#   DATA=/path/to/cifar10 bash tools/study_reference.sh     # log in $SICS_CACHE/reference-study.log
#
# Needs the trained weights (figures/reference/weights.safetensors: tools/train_weights.sh makes
# them) and CIFAR-10. Every finished row is appended to figures/reference/sweep.csv at once and
# its per-image result cached, so a killed run resumes where it stopped when started again. Each
# notebook packs figures/reference/results.zip when it ends; commit it with sweep.csv, the tables
# and figures. Like training, it wants the cores to itself: run nothing else meanwhile.
set -euo pipefail
cd "$(dirname "$0")/.."
export SICS_CACHE="${SICS_CACHE:-$(cd .. && pwd)/sics-cache}"
export SICS_DATA="${DATA:-${SICS_DATA:?set SICS_DATA or DATA to the CIFAR-10 source}}" PYTHONUNBUFFERED=1
test -f figures/reference/weights.safetensors || { echo "no figures/reference/weights.safetensors: run tools/train_weights.sh first" >&2; exit 1; }
mkdir -p "$SICS_CACHE"
nohup bash -c 'start=$(date +%s); make paper PROFILE=reference; echo "[sics] reference study: $(( $(date +%s) - start )) s wall"' \
    >> "$SICS_CACHE/reference-study.log" 2>&1 &
echo "study running in the background (pid $!); log: $SICS_CACHE/reference-study.log"
