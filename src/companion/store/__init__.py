"""The results store: one directory per run (config hash → config, metrics, summary, arrays,
checkpoint, lock), its provenance, and the compact weight artifacts."""
