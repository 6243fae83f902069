"""Training: fit a VAE on normal data, calibrate a threshold, export an ONNX model bundle.

Importing this package does not import torch; only the training commands do.
"""
