"""A study of one model and unit kind: `sweep` (the Study, its cached per-image results and the
append-only row store, `run_sweep`), `stage` (one notebook's unit of work), `bundle` (committed
per-image results), `calibration` (saved calibration statistics), `ablations`."""
