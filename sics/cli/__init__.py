"""The commands behind `make`: `paper` (run the notebooks), `verify` (re-evaluate committed
results), `bench` (throughput, FLOPs, MFU). Each is `python -m sics.cli.<name>`."""
