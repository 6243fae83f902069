"""The image path of training: MNIST digits -> VAE (conv or dense) -> ONNX bundle, on the core.

Modules, in the order the pipeline uses them: mnist (the IDX files, pixel scaling), selection
(normal and anomalous digits, the evaluation protocol), models, loss and fit (torch), export
(graphs, parity), evaluate (metrics, the comparison table), report (figures), pipeline (the run).
"""
