"""The metric (KPI) path of training: CSV series -> windows -> dense VAE -> ONNX bundle, with a baseline.

Modules, in the order the pipeline uses them: load (CSV files), windows (grid, split,
scaling, training windows), model and fit (torch), baseline (rolling z-score), export
(ONNX, parity), scoring and evaluate (onnxruntime, point-adjusted metrics), report
(figures), pipeline (the whole run), offline (what the worker should alert on).
Importing this package does not import torch; load, windows, baseline, scoring,
evaluate and offline never do.
"""
