"""The paper's stated numbers, in one place (arXiv 2605.09345; only its abstract is public).

Every rule, power analysis, table, figure and selector reads them from here by name, so a reader
checks them against the abstract once. Accuracy effects are in points (the abstract's fractions
×100); sparsities are fractions of the units removed.
"""

from __future__ import annotations

# the regimes: κ=0 (the plateau) is optimal below the first boundary, rank-aligned smooth (κ=1)
# features escape between the two, only raw high-frequency (κ=2) features above the second
BOUNDARY_SMOOTH = 0.65
BOUNDARY_RAW = 0.75
BOUNDARIES = (BOUNDARY_SMOOTH, BOUNDARY_RAW)
S_SMOOTH = 0.7  # where the smooth escape is stated (C3) and the bump is compared (C6)
S_RAW = 0.8  # where the raw escape is stated (C4)

SMOOTH_ESCAPE = 6.6  # C3: the best κ=1 escape at S ≈ 0.7
RAW_ESCAPE = 2.6  # C4: the κ=2 escape at S = 0.8
BUMP_ESCAPE = 0.6  # C6: a Gaussian bump's escape (+0.006)
CHAOS_ESCAPE = 4.6  # C6: the chaos-derived feature's escape (+0.046)
