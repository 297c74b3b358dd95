"""Training the dense model: `train` (the loop, checkpoints and resume, recovery fine-tuning),
`weights` (committed weights, one file or bf16 shards), `export` (train, then export)."""
