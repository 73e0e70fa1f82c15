"""Benchmarks: accuracy and speed of the rules pipeline against medspaCy's default pipeline."""
