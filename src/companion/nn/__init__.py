"""The paper's networks and what reads one: layers, the model zoo, embeddings, parameter counts,
sparse execution, first-layer analysis and its snapshots (no data, training or results here)."""
