"""Datasets (files on disk, synthetic data, pixel permutations) and on-device augmentation
(Fast AutoAugment); nothing here knows a model."""
