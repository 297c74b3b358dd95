"""The seams a new domain plugs into: a data source (`sics.data.registry`) and a model family
(`sics.models.families`), registered from outside the package. A toy text source (token
sequences, a label read from them) and a toy transformer over tokens with timm's MLP naming go
through the whole flow: training, the study, the one selection path and a ci-sized sweep."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from timm.layers import Mlp
from torch import nn

from sics.config import ModelConfig, resolve_profile
from sics.data import registry
from sics.models import families
from sics.study.study import prepare
from sics.study.sweep import run_sweep

VOCAB, LENGTH, CLASSES = 16, 12, 4


@dataclass
class ToyText:
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    source: str = "toy token sequences"
    source_id: str = "toy-text-1"

    def subset(self, n_train, n_test) -> ToyText:
        return ToyText(self.train_x[:n_train], self.train_y[:n_train], self.test_x[:n_test], self.test_y[:n_test])


def load_toy(spec=None) -> ToyText:
    """Sequences of random tokens; the label is the first token's class (a rule the model learns)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, VOCAB, (1200, LENGTH), generator=g)
    y = x[:, 0] % CLASSES
    return ToyText(x[:1000], y[:1000], x[1000:], y[1000:])


class TokenBatches:
    """A token split on the device: no normalisation, no augmentation."""

    def __init__(self, x, y, profile, device):
        self.device = torch.device(device)
        self.x, self.y = x.to(self.device), y.to(self.device)

    def __len__(self) -> int:
        return len(self.y)

    def prepare(self, xb, augment="none", generator=None):
        return xb

    def batches(self, batch_size, *, shuffle=False, augment="none", seed=0, drop_last=False):
        order = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed)) if shuffle else torch.arange(len(self))
        for s in range(0, len(self), batch_size):
            idx = order[s : s + batch_size]
            yield self.x[idx], self.y[idx]


class Block(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, hidden)  # fc1, act, fc2: what the `mlp_channels` unit prunes

    def forward(self, h):
        return h + self.mlp(self.norm(h))


class ToyTransformer(nn.Module):
    def __init__(self, dim: int, hidden: int, depth: int):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, dim)
        self.pos = nn.Parameter(torch.zeros(LENGTH, dim))
        self.blocks = nn.ModuleList(Block(dim, hidden) for _ in range(depth))
        self.head = nn.Linear(dim * LENGTH, CLASSES)

    def forward(self, x):
        h = self.embed(x) + self.pos
        for blk in self.blocks:
            h = blk(h)
        return self.head(h.flatten(1))


@dataclass(frozen=True)
class ToyConfig(ModelConfig):
    """The toy family's config: its geometry, and the checkpoint key it stands for."""

    model_name: str = "toy_text"
    dim: int = 16
    hidden: int = 32
    depth: int = 2

    def key(self) -> dict:
        return dict(model_name=self.model_name, dim=self.dim, hidden=self.hidden, depth=self.depth)


def build_toy(profile, weights=None) -> nn.Module:
    return ToyTransformer(profile.model.dim, profile.model.hidden, profile.model.depth)


@pytest.fixture
def toy_domain():
    source = registry.register_source(registry.DataSource("toy_text", load_toy, TokenBatches))
    family = families.register_family(families.Family(
        "toy_text", ToyConfig, lambda m: f"{m.depth}x{m.dim}", lambda m: f"toy transformer {m.depth}x{m.dim}",
        build_toy))  # fmt: skip
    yield source, family
    registry.SOURCES.pop(source.name)
    families.FAMILIES.pop(family.name)


def test_a_toy_text_source_and_model_family_registered_from_outside_run_a_sweep(toy_domain):
    p = resolve_profile("ci").replace(name="toy", model=ToyConfig(), dataset="toy_text", augment="none",
                                      n_train=1000, n_test=200, epochs=3,
                                      batch_size=50, warmup_epochs=0.0, lr=3e-3, label_smoothing=0.0, n_calib=64,
                                      eval_precision="fp32", fp32_decisions=False)  # fmt: skip
    study = prepare(p, device="cpu", progress=False)
    assert study.trained.trained_now and study.inputs.source == "toy token sequences"
    assert study.dense_accuracy > 0.6  # the model learned the rule (chance: 0.25)
    assert [b.H for b in study.selection.stats] == [32, 32]  # its MLP channels, found by timm's names
    rows = run_sweep(study, ["magnitude", "random", "logistic_smooth", "gradient"], [0.5], n_seeds=2)
    assert len(rows) == 1 + 2 + 2 + 2 and set(rows["kept"]) == {32}  # half of 2 x 32 channels kept
    assert rows["accuracy"].between(0, 1).all() and (rows["n_test"] == 200).all()
    magnitude = rows[rows["scorer"] == "magnitude"].iloc[0]
    _, masks = study.masks("magnitude", 0.5)
    assert np.array_equal(study.correct(masks), study.correct_for_row(magnitude))
    assert registry.get_source("toy_text") is toy_domain[0] and families.family(p) is toy_domain[1]
