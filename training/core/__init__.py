"""What every kind of model shares: the epoch loop (fit), the VAE forward pass and KL term (vae), ONNX
export and the torch/onnxruntime parity check (export), scoring with plain onnxruntime
(onnx_scoring), threshold calibration (calibrate), the atomic bundle and its manifest (bundle), the
steps after the fit in their one order (steps), and the loss-curve figure (figures). The repository
layout and version rule are in `schemas.repository`.

Importing this package does not import torch; fit, vae and export do.
"""
