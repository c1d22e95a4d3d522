"""What training and service both run: scorers, the tree engine, the answer, snapshot lookup, settings.

A leaf: it imports neither `training` nor `service`, nor duckdb, scikit-learn or matplotlib.
"""
