"""A profile: one frozen set of defaults for a study, its model's config (`sics.config.models`),
its data budget, its training recipe and its study's grid. Every output records which profile
made it, so a `quick` number is never mistaken for a ViT-Small one."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..errors import ParameterError
from .models import ModelConfig, ViTConfig


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    model: ModelConfig = field(default_factory=ViTConfig)
    # data budget (None = the whole split)
    n_train: int | None = None
    n_test: int | None = None
    n_calib: int = 1024
    # training recipe
    epochs: int = 40
    batch_size: int = 512
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 2.0
    label_smoothing: float = 0.1
    augment: str = "crop_flip"  # "none" | "flip" | "crop_flip" | "crop_flip_cutout" (8x8)
    drop_path: float = 0.0
    optimizer: str = "adamw"  # "adamw" | "sgd" (Nesterov momentum)
    momentum: float = 0.9  # sgd only
    channels_last: bool = False  # conv nets: channels-last memory format (faster on CPU)
    train_precision: str = "auto"  # "auto" (bf16 autocast on CUDA, fp32 elsewhere) | "fp32" | "bf16"
    train_seed: int = 0
    dataset: str = "cifar10"  # the data source (`sics.data.registry`)
    ckpt_every: int = 1  # epochs between resumable checkpoints (and the last epoch)
    ckpt_minutes: float | None = None  # or sooner, once this many minutes passed since the last
    # study
    unit: str = "mlp_channels"  # the pruning unit of this model's study (`sics.units`)
    sparsities: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8)
    n_seeds: int = 5  # seeds of every stochastic scorer on the main grid
    unit_seeds: tuple[tuple[str, int], ...] = ()  # other counts for other unit kinds, e.g. (("tokens", 10),)
    eval_batch_size: int = 1024
    eval_precision: str = "auto"  # "auto" (bf16 on CUDA, fp32 elsewhere) | "fp32" | "bf16"
    # the final norm and classifier, and token importance, in fp32 under a bf16 evaluation (no
    # argmax ties from rounding); off where a committed bundle was measured without it
    fp32_decisions: bool = False
    # beyond the paper: phase-diagram grid (start, stop, step) and ablation budget
    fine_grid: tuple[float, float, float] = (0.40, 0.90, 0.025)
    fine_seeds: int | None = None  # seeds on the fine grid (None: the main grid's, `seeds(unit)`)
    criteria_seeds: int | None = None  # seeds of notebook 09 at the main S (None: the main grid's)
    ablation_seeds: int = 3
    recovery_steps: int = 100  # steps of recovery fine-tuning in the recovery ablation
    ablation_sparsities: tuple[float, ...] | None = None  # None: the notebook's main sparsities

    def fine_sparsities(self) -> list[float]:
        """The phase diagram's sparsity grid: `fine_grid`'s start to stop (inclusive) by its step."""
        import numpy as np

        start, stop, step = self.fine_grid
        return [round(float(s), 4) for s in np.arange(start, stop + step / 2, step)]

    def seeds(self, unit: str) -> int:
        """Seeds of a stochastic scorer on the main grid of a study of `unit`."""
        return dict(self.unit_seeds).get(unit, self.n_seeds)

    @property
    def pretrained(self) -> bool:
        """Whether training starts from pretrained weights (a fine-tuning recipe)."""
        return bool(getattr(self.model, "pretrained", False))

    def from_scratch(self) -> Profile:
        """This profile without pretrained weights (a model to load trained weights into)."""
        return self.replace(pretrained=False) if self.pretrained else self

    def replace(self, **changes) -> Profile:
        """A copy with some fields changed (notebook parameters override profile defaults). A
        field of the model's config is changed in the config: `replace(depth=3)`."""
        own = {f.name for f in dataclasses.fields(self)}
        of_model = {k: changes.pop(k) for k in list(changes) if k not in own and k in self.model.field_names()}
        unknown = set(changes) - own
        if unknown:
            raise ParameterError(f"unknown profile field(s) {sorted(unknown)} for a {type(self.model).__name__} profile")
        model = changes.pop("model", self.model)
        if of_model:
            model = dataclasses.replace(model, **of_model)
        return dataclasses.replace(self, model=model, **changes)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)
