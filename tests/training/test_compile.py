"""torch.compile, as the GPU run uses it: the training step of a tiny model compiles on this CPU
(Inductor, g++) without recompiling across epochs, and the scratch geometry has no graph break."""

from __future__ import annotations

import pytest
import torch

from sics.config import resolve_profile
from sics.data import load_cifar10
from sics.models import build_model
from sics.training.checkpoints import train_or_load

pytestmark = pytest.mark.e2e  # an Inductor compile: end-to-end

dynamo = pytest.importorskip("torch._dynamo")


def test_the_compiled_training_step_compiles_once_and_trains_every_epoch(tiny_tree, capsys):
    # 120 images in batches of 32: three full batches a step shape, dropping the rest, as on a GPU
    p = resolve_profile("ci", epochs=2, batch_size=32, depth=1)  # one block: the mechanism, compiled fast
    data = load_cifar10(str(tiny_tree)).subset(p.n_train, p.n_test)
    dynamo.reset()
    dynamo.utils.counters.clear()
    with dynamo.config.patch(error_on_recompile=True):
        t = train_or_load(p, data, torch.device("cpu"), progress=False, compile=True)
    assert "torch.compile failed" not in capsys.readouterr().err  # (the eager fallback says so)
    assert t.trained_now and len(t.history) == 2 and t.history["train_loss"].notna().all()
    assert dynamo.utils.counters["stats"]["unique_graphs"] == 1  # one graph, compiled once


def test_the_scratch_vit_traces_as_one_graph_without_a_break():
    model = build_model(resolve_profile("scratch")).train()  # drop-path on, as in training
    explained = dynamo.explain(lambda x: model(x).sum())(torch.randn(2, 3, 32, 32))
    assert explained.graph_break_count == 0 and explained.graph_count == 1, explained.break_reasons
