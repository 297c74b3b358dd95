"""A first look at MoEfication of a committed ViT (prints figures; writes nothing): its blocks'
MLP channels split into E balanced experts by co-activation on a sample of training images, a
linear router per block fitted to the oracle's expert scores, and the test accuracy when each
token runs only its k chosen experts (router, or oracle), against dense.

    SICS_DATA=... python tools/moe_probe.py [--profile reference] [--experts 32] [--images 256] [--k 8 12 16 24]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from sics.data.batches import DeviceBatches
from sics.models.evaluate import predict_correct
from sics.study.study import prepare
from sics.units.expert_ops import expert_output_norms, moe_mlp, top_experts
from sics.units.experts import (
    balanced_partition,
    coactivation_features,
    fit_router,
    recall_at_k,
    router_scores,
)


def block_inputs(model, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per block, the MLP's input tokens and its hidden activations on images `x`, flattened."""
    ins, acts, hooks = [], [], []
    for blk in model.blocks:
        hooks.append(blk.mlp.register_forward_hook(lambda m, i, o: ins.append(i[0].flatten(0, 1))))
        hooks.append(blk.mlp.act.register_forward_hook(lambda m, i, o: acts.append(o.flatten(0, 1))))
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return ins, acts


def patched(model, labels, routers, k: int, oracle: bool):
    """Replace each block's MLP forward by one running each token's k chosen experts."""
    saved = []
    for b, blk in enumerate(model.blocks):
        mlp = blk.mlp

        def forward(x, mlp=mlp, b=b):
            if oracle:
                scores = expert_output_norms(mlp, x, labels[b])
            else:
                r = torch.from_numpy(routers[b]).to(x.dtype)
                scores = x @ r[:-1] + r[-1]
            return moe_mlp(mlp, x, labels[b], top_experts(scores, k))

        saved.append(mlp.forward)
        mlp.forward = forward
    return saved


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="reference")
    ap.add_argument("--experts", type=int, default=32)
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--k", type=int, nargs="+", default=[8, 12, 16, 24])
    args = ap.parse_args()
    study = prepare(args.profile, progress=False)
    model, E = study.model, args.experts
    data = study.data
    idx = torch.randperm(len(data.train_y), generator=torch.Generator().manual_seed(0))[: args.images]
    train = DeviceBatches.of(data.train_x[idx], data.train_y[idx], study.profile, study.device)
    x = train.prepare(train.x)
    t0 = time.time()
    ins, acts = block_inputs(model, x)
    labels, routers = [], []
    for b, (inp, act) in enumerate(zip(ins, acts, strict=True)):
        labels.append(balanced_partition(coactivation_features(act.numpy()), E, seed=b))
        with torch.no_grad():
            oracle = expert_output_norms(model.blocks[b].mlp, inp, labels[-1]).numpy()
        n = len(inp) * 3 // 4
        routers.append(fit_router(inp[:n].numpy(), oracle[:n]))
        pred = router_scores(routers[-1], inp[n:].numpy())
        recalls = ", ".join(f"k={k}: {recall_at_k(pred, oracle[n:], k):.2f}" for k in args.k)
        load = np.bincount(np.argsort(-pred, axis=1)[:, : args.k[0]].ravel(), minlength=E) / len(pred)
        print(f"block {b}: router recall of the oracle's top k on held-out tokens {recalls}; "
              f"load at k={args.k[0]} (share of tokens per expert) {load.min():.2f}-{load.max():.2f}")
    print(f"[probe] experts and routers from {args.images} images in {time.time() - t0:.0f} s")
    p = study.profile
    dense = predict_correct(model, study.test, p.eval_batch_size, p.eval_precision).float().mean().item()
    print(f"dense: {dense:.2%}")
    for k in args.k:
        for oracle in (False, True):
            saved = patched(model, labels, routers, k, oracle)
            acc = predict_correct(model, study.test, p.eval_batch_size, p.eval_precision).float().mean().item()
            for blk, fwd in zip(model.blocks, saved, strict=True):
                blk.mlp.forward = fwd
            print(f"k={k} of {E} (S={1 - k / E:.3f}, MLP FLOPs {k / E:.0%} of dense), "
                  f"{'oracle' if oracle else 'router'}: {acc:.2%}", flush=True)


if __name__ == "__main__":
    main()
