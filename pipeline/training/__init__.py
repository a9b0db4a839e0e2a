"""Training: fit a leopard head on a backbone's features, evaluate it against the zero-shot
baseline, and report (labels, grouped splits, metrics, the HTML report).
"""
