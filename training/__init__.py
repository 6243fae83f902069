"""Training: fit a VAE on normal data, export it to ONNX, calibrate its threshold on the exported graph's
scores, evaluate it, and write a model bundle.

core (what every kind shares) under images (MNIST) and kpi (metric series); cli and settings are the
`python -m training` commands. Importing this package does not import torch; only the training
commands do.
"""
