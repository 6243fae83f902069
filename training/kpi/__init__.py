"""The metric (KPI) path of training: CSV series -> windows -> dense VAE -> ONNX bundle, with baselines,
on the core (training.core).

Modules, in the order the pipeline uses them: load (CSV files), windows (grid, split,
scaling, training windows), model and fit (torch), baseline (rolling z-score, Hampel), export
(ONNX, parity), scoring and evaluate (onnxruntime, point-adjusted metrics), nab (NAB's
scoring), report (figures), pipeline (the whole run), offline (what the worker should alert
on); synth writes labelled synthetic series. Importing this package does not import torch;
load, windows, baseline, scoring, evaluate, nab, offline and synth never do.
"""
