"""Data sources, registered by name, without importing torch: how a profile's `dataset` is loaded
(both splits, with where they came from) and how a split is batched on the device. CIFAR-10 is
the one here; another domain (text for a language model) registers its own, from inside the
package or outside it, and every study, training and evaluation path reads it through this."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import ParameterError


def _resolve(target: str | Callable) -> Callable:
    if callable(target):
        return target
    module, _, name = target.partition(":")
    obj: Any = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class DataSource:
    """`load(spec)`: both splits (`train_x`, `train_y`, `test_x`, `test_y`, `source`,
    `source_id`, `subset(n_train, n_test)`); `batches(x, y, profile, device)`: a split on the
    device that yields (inputs, labels) batches (`sics.data.batches.DeviceBatches` is the images').
    Either may be "module:attribute", imported on first use."""

    name: str
    load: str | Callable[..., Any]
    batches: str | Callable[..., Any]
    per_profile: bool = False  # load(spec, profile): the data's shape depends on the model (text contexts)


SOURCES: dict[str, DataSource] = {}


def register_source(source: DataSource) -> DataSource:
    SOURCES[source.name] = source
    return source


def get_source(name: str) -> DataSource:
    if name not in SOURCES:
        raise ParameterError(f"unknown dataset {name!r}; registered: {', '.join(SOURCES)}")
    return SOURCES[name]


def load_data(profile, spec=None):
    """The profile's train split and test subset of its dataset from `spec` (the source's own
    default where None)."""
    source = get_source(profile.dataset)
    load = _resolve(source.load)
    data = load(spec, profile) if source.per_profile else load(spec)
    return data.subset(profile.n_train, profile.n_test)


def batches_of(x, y, profile, device):
    """The split (`x`, `y`) on `device`, batched as the profile's dataset batches it."""
    return _resolve(get_source(profile.dataset).batches)(x, y, profile, device)


register_source(DataSource("cifar10", "sics.data.sources:load_cifar10", "sics.data.batches:DeviceBatches.of"))
register_source(DataSource("text", "sics.data.text:load_text_data", "sics.data.text:text_batches", per_profile=True))
