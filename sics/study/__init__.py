"""A study of one model and unit kind: `study` (the Study: the dense model, its data on demand,
the per-image results from the cache or the committed bundle, `prepare`), `rows` (the
append-only row store, sweep.csv), `sweep` (row keys and `run_sweep`), `stage` (one notebook's
unit of work), `bundle` (committed per-image results), `calibration` (saved calibration
statistics), `ablations`."""
