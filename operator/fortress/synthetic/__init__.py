"""SyntheticDataset: seeded, fast, measurably realistic synthetic data, and decoys (docs/synthetic.md)."""
