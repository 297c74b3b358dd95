"""sics: a reproducible companion to "Selection Plateau and a Sparsity-Dependent Hierarchy of
Pruning Features" (arXiv 2605.09345). Modules are imported where used (`from sics import sweep`).

A regular package, not a namespace one: with two checkouts (worktrees) sharing one environment,
`import sics` then takes the whole package from the first checkout on the path, never a mix.
"""
