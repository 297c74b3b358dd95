"""The routing criteria of the experts unit (`sics.units.moe`), as registered scorers of kind
"moe" (`scorers.published("moe")`), through the one selection path. The router's own top k is
magnitude (m is the router's score), a random router is the random baseline; here:

- `moe_oracle` (MoEfication's oracle, Zhang et al. 2022): the norm of each expert's actual
  contribution to the token's MLP output, from the dense model's activations.
"""

from __future__ import annotations

import numpy as np

from .groups import BlockStats
from .scorers import MOE_KIND, register


@register("moe_oracle", kappa="criterion", batched=True, criterion=MOE_KIND, needs=("oracle_norm",))
def moe_oracle(block: BlockStats, S: float, rng: np.random.Generator) -> np.ndarray:
    return block.need("oracle_norm", "moe_oracle")
