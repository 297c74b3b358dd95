"""A trained dense model's identity, without importing torch: the profile fields that change the
weights (`training_fields`), the checkpoint id keyed by them, the hash of a resolved recipe, and
`Trained`, whose model is built only when something runs it: regenerating committed results
from their bundle never does."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..config import Profile
from ..files import stable_hash
from . import weights as committed

# The recipe's fields that change the trained weights (and so the checkpoint key), beside the
# model config's own (`ModelConfig.key`).
TRAINING_FIELDS = ("n_train", "epochs", "batch_size", "lr", "weight_decay", "warmup_epochs", "label_smoothing",
                   "augment", "drop_path", "train_seed")  # fmt: skip


# Fields added later: part of the key only where a profile changes them, so the ids (and the
# committed weights' records) of every earlier configuration stay valid. The defaults are those of
# when each field was added, not read from `Profile`: changing a Profile default then changes ids.
OPTIONAL_TRAINING_FIELDS = {"optimizer": "adamw", "momentum": 0.9, "channels_last": False,
                            "train_precision": "auto", "pool_first": False, "logit_scale": 1.0,
                            "dataset": "cifar10"}


def training_fields(profile: Profile, every_optional: bool = False) -> dict:
    """The fields that change the trained weights (JSON-able), keyed as the first ids were: the
    model config's key, the recipe's fields, and each optional field where it differs from the
    default it was added with (every one with `every_optional`)."""
    out = dict(profile.model.key())
    optional = {f: out.pop(f) if f in out else getattr(profile, f, default)
                for f, default in OPTIONAL_TRAINING_FIELDS.items()}  # fmt: skip
    out.update({f: getattr(profile, f) for f in TRAINING_FIELDS})
    out.update({f: v for f, v in optional.items() if every_optional or v != OPTIONAL_TRAINING_FIELDS[f]})
    return {f: list(v) if isinstance(v, tuple) else v for f, v in out.items()}  # tuples as lists: the same JSON


def checkpoint_id(profile: Profile, data_id: str, weights: str | None = None) -> str:
    config = training_fields(profile)
    config.update(data=data_id, weights=str(weights) if weights else None, recipe=RECIPE_VERSION)
    return f"{profile.name}-{stable_hash(config)}"


RECIPE_VERSION = 2  # bump when the training code changes what a configuration trains


def recipe_hash(recipe: dict) -> str:
    """The hash of a resolved recipe (`checkpoints.resolved_recipe`): equal for the runs of one recipe."""
    return stable_hash(recipe)


@dataclass
class Trained:
    """The dense model of a configuration and how it was made. `model` is built on first use by
    `load` (committed weights are read and checked at once; the network is built, which imports
    torch, only when something runs it)."""

    ckpt_id: str
    ckpt_dir: Path
    history: pd.DataFrame
    test_accuracy: float
    trained_now: bool  # False when the cached checkpoint was loaded
    seconds: float  # of this call
    train_seconds: float  # of the training that made the checkpoint (summed over resumes)
    weights_sha256: str | None = None  # set when the model came from committed weights
    load: Callable[[], Any] | None = field(default=None, repr=False)
    # the committed weights as numpy arrays by state-dict name, read without torch (None: not committed)
    load_arrays: Callable[[], dict] | None = field(default=None, repr=False)
    _model: Any = field(default=None, repr=False)

    @property
    def model(self):
        if self._model is None:
            if self.load is None:
                raise RuntimeError(f"{self.ckpt_id}: no model and no way to load it")
            self._model = self.load()
        return self._model

    @property
    def model_loaded(self) -> bool:
        return self._model is not None


def committed_trained(profile: Profile, build: Callable[[dict, Path], Any]) -> Trained | None:
    """The committed weights of the profile's run (`sics.training.weights`), checked now (hash and
    training fields); their model is `build(state dict, record path)`, made on first use. None
    where none are committed, or a retrain is asked for."""
    if profile.pretrained or committed.retrain_requested():
        return None
    t0 = time.time()
    run = profile.train_seed
    meta = committed.record(profile.name, training_fields(profile), run)
    if meta is None:
        return None
    mpath = committed.paths(profile.name, run)[1]
    return Trained(meta["ckpt_id"], mpath.parent, pd.DataFrame(meta.get("history", [])), float(meta["test_accuracy"]),
                   False, time.time() - t0, float(meta.get("train_seconds", 0.0)), meta["sha256"],
                   load=lambda: build(committed.state_dict(profile.name, meta, run), mpath),
                   load_arrays=lambda: committed.arrays(profile.name, meta, run))  # fmt: skip
