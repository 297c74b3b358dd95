#!/usr/bin/env bash
# The scratch-profile reference run (ViT-Small geometry) on a lent GPU machine, as one script
# with a deadline, packing what finished after every stage.
#
# Here, before the call:   mkdir -p .device && cp ../shared/data/cifar10-jpeg.tar.gz .device/
# The revision:            .venv/bin/python -c "from sics.provenance import git_revision as r; print(r())"
# The call (device tool):  command: SICS_GIT_REV=<that revision> bash tools/gpu_reference_run.sh
#                          carry: [".device"], timeout_s: 600
# Back here:               .venv/bin/python -m sics.ship restore <files_at>
#                          make paper PROFILE=scratch        (regenerates from what came back)
#                          make verify PROFILE=scratch DATA=...   (re-evaluates a sample on this CPU)
#
# Stages, most valuable first: train and export the weights (bf16 shards under 16 MB); the
# notebooks in order, 01, 02-03 (the plateau, the kappa spectrum), 04-05, 06 (fine grid,
# ablations), 07-08 (tokens, architectures); the benchmark last, with its own limit. A stage
# starts only if its minimum fits before the deadline, and runs under a timeout that ends at it.
# After every notebook, on TERM (the timeout's, or the device tool's) and after every stage, the
# study is packed into $OUT (each returned file replaced atomically), so whatever finished comes
# back even if the call is cut short: sweep rows are appended as they finish, and a stopped
# notebook packs their per-image results first.
# The GPU image has torch and timm but no papermill or jupyter: notebooks run with the inline engine.
#
# What comes back (python -m sics.ship, within the device's limits: at most 8 flat files of at most
# 16 MiB, 64 MiB in all): the weight shards as they are, study.tar (rows, bundles, calibration,
# records, with a manifest of every sha256) and figures.tar (tables and figures).
# The run's records (stages.tsv, run.log, gpu.txt, versions.txt, bench.json) are kept in
# figures/$PROFILE/gpu_run/ and travel in study.tar.
#
# Knobs (environment): PROFILE (scratch), DEADLINE_S (500: seconds from the start by which the
# study must end), BENCH_S (40: the benchmark's, after it; all of it ends by about 550 s, inside
# the call's 600), SHARD_MB (15), PYTHON (python3), OUT, SICS_DATA, SICS_CACHE, SICS_FIGURES.
set -uo pipefail
cd "$(dirname "$0")/.."
START=$(date +%s)
PROFILE="${PROFILE:-scratch}" DEADLINE_S="${DEADLINE_S:-500}" BENCH_S="${BENCH_S:-40}"
SHARD_MB="${SHARD_MB:-15}" PY="${PYTHON:-python3}" OUT="${OUT:-/tmp/out}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 MPLBACKEND=Agg
export SICS_PROGRESS="${SICS_PROGRESS:-text}" SICS_PROGRESS_INTERVAL="${SICS_PROGRESS_INTERVAL:-30}"
export SICS_DATA="${SICS_DATA:-$PWD/.device/cifar10-jpeg.tar.gz}" SICS_CACHE="${SICS_CACHE:-/tmp/sics-cache}"
if [ -z "${SICS_GIT_REV:-}" ] && ! git rev-parse HEAD >/dev/null 2>&1; then
  echo "gpu-run: no .git here: set SICS_GIT_REV to the revision (see the header)" >&2; exit 2
fi
REC="${SICS_FIGURES:-figures}/$PROFILE/gpu_run"  # the run's records, packed with the study
mkdir -p "$OUT" "$REC"
# the log: tee ignores TERM (a TERM to the whole group must not take the log, and with it the
# trap's output, away), and a failed write never kills this script (PIPE ignored)
trap '' PIPE
exec > >(trap '' TERM INT; exec tee -a "$REC/run.log") 2>&1
child=

say() { echo "[gpu-run $(( $(date +%s) - START ))s] $*"; }
pack() { "$PY" -m sics.ship pack --profile "$PROFILE" --out "$OUT" || say "packing failed"; }
stop() {  # TERM/INT: end the running stage, pack what finished, and leave
  say "interrupted ($1): stopping the running stage and packing"
  [ -n "$child" ] && kill -TERM "$child" 2>/dev/null && wait "$child" 2>/dev/null
  printf '%s\t%s\t%s\n' "${stage:-none}" interrupted "$(( $(date +%s) - START ))" >> "$REC/stages.tsv"
  pack
  exit 143
}
trap 'stop TERM' TERM
trap 'stop INT' INT

# stage NAME MIN_SECONDS MAX_SECONDS COMMAND...: run it if MIN_SECONDS fit before the deadline,
# under a timeout of MAX_SECONDS or until the deadline, whichever is sooner; then pack.
stage() {
  stage="$1"; local min="$2" max="$3"; shift 3
  local left=$(( DEADLINE_S - ($(date +%s) - START) ))
  if [ "$left" -lt "$min" ]; then
    say "$stage: skipped ($left s left before the deadline, it needs at least $min)"
    printf '%s\tskipped\t0\n' "$stage" >> "$REC/stages.tsv"
    return 1
  fi
  [ "$max" -lt "$left" ] && left=$max
  say "$stage: starting (at most $left s)"
  local t0; t0=$(date +%s)
  timeout --signal=TERM --kill-after=5 "$left" "$@" &
  child=$!
  wait "$child"; local rc=$?
  child=
  local took=$(( $(date +%s) - t0 ))
  say "$stage: exit status $rc after $took s"
  printf '%s\t%s\t%s\n' "$stage" "$rc" "$took" >> "$REC/stages.tsv"
  pack
  return "$rc"
}

printf 'stage\tstatus\tseconds\n' > "$REC/stages.tsv"
say "profile $PROFILE, deadline ${DEADLINE_S} s (+${BENCH_S} s of benchmark), revision ${SICS_GIT_REV:-$(git rev-parse --short=10 HEAD)}"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo "no nvidia-smi"; } > "$REC/gpu.txt"
cat "$REC/gpu.txt"
"$PY" -m pip list 2>/dev/null | grep -iE "^(torch|torchvision|timm|numpy|pandas) " | tee "$REC/versions.txt"

if [ -e "${SICS_FIGURES:-figures}/$PROFILE/weights.json" ]; then
  say "train: $PROFILE's weights are here already; not training"
elif ! stage train 120 "$DEADLINE_S" "$PY" -m sics.training.export --profile "$PROFILE" --dtype bf16 --shard-mb "$SHARD_MB"; then
  say "no trained model: the study cannot run"; exit 1
fi
# the notebooks in one process (one start-up), which packs after each one and on TERM
stage notebooks 20 "$DEADLINE_S" "$PY" -m sics.cli.paper --profile "$PROFILE" --engine inline --pack-to "$OUT"
DEADLINE_S=$(( DEADLINE_S + BENCH_S ))  # the benchmark's own budget, after the study's deadline
stage bench 10 "$BENCH_S" "$PY" -m sics.cli.bench --profile "$PROFILE" --json "$REC/bench.json"
say "done in $(( $(date +%s) - START )) s"
pack
