"""Training the dense model: `loop` (the optimiser, one step, epochs with resumable state, recovery
fine-tuning), `checkpoints` (the model of a configuration: committed, cached, or trained now),
`weights` (committed weights, one file or bf16 shards), `export` (train, then export)."""
