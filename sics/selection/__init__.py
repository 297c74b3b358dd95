"""The selection layer, numpy only: groups of units and their statistics (`groups`), the feature
shapes (`features`), the scorer registry (`scorers`), scores to keep-masks for every scorer alike
(`select`, under block or global allocation), and the measured complexity κ̂ (`complexity`). A scorer computes scores; `select`
turns them into masks; a unit kind applies them to a model (`sics.units`). The published criteria
(`criteria`) register into the same registry when the layer is imported."""

from . import criteria as criteria
from . import kv_criteria as kv_criteria
from . import moe_criteria as moe_criteria
