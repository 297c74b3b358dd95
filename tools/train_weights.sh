#!/usr/bin/env bash
# Train a profile's dense model on this 2-core CPU, in the background, alone, and export its
# weights for commit: `reference` (the ViT, the default) or `resnet` (notebook 08's ResNet-9).
#
#   bash tools/train_weights.sh [PROFILE]   # starts (or resumes) it; log in $SICS_CACHE/PROFILE-train.log
#
# reference takes the cores for about 2.6 hours (40 epochs at 200-280 s each), resnet for about
# 58 minutes (35 epochs at 80-111 s, bf16): run nothing else meanwhile (two torch processes on two
# cores each collapse to a fraction of their speed; `nice` does not help). The resumable state is
# saved every epoch under $SICS_CACHE (default: /work/sics-cache, outside the work tree, so a later
# session on the same machine can resume it). Needs SICS_DATA (or DATA=path). When it ends, the
# weights are exported to figures/PROFILE/weights.safetensors (+ weights.json), ready to commit.
#
# To replace committed weights: move figures/PROFILE/weights.* away first (with them present, a
# run trains a separate `-retrained` model). Re-running the study then replaces results.zip, but
# sweep.csv keeps the old model's rows (tables read only the current checkpoint's): drop them by
# hand before committing.
set -euo pipefail
cd "$(dirname "$0")/.."
export SICS_CACHE="${SICS_CACHE:-$(cd .. && pwd)/sics-cache}" SICS_PROGRESS=text PYTHONUNBUFFERED=1
export SICS_DATA="${DATA:-${SICS_DATA:?set SICS_DATA or DATA to the CIFAR-10 source}}"
PROFILE="${1:-reference}"
mkdir -p "$SICS_CACHE"
test -x .venv/bin/python || make .venv/.installed
nohup .venv/bin/python -c "
from sics.config import resolve_profile, pick_device
from sics.data import load_cifar10
from sics.training.checkpoints import export_weights, train_or_load
p = resolve_profile('$PROFILE')
data = load_cifar10().subset(p.n_train, p.n_test)
t = train_or_load(p, data, pick_device(), progress=True)
print(f'[sics] {p.name}: {t.test_accuracy:.2%} after {t.train_seconds / 60:.0f} min of training ({t.ckpt_id})')
if t.weights_sha256 is None:
    print('[sics] weights for commit:', export_weights(t, p, data.source))
" >> "$SICS_CACHE/$PROFILE-train.log" 2>&1 &
echo "training in the background (pid $!); log: $SICS_CACHE/$PROFILE-train.log"
