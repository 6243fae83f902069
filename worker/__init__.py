"""The worker: Kafka -> decode -> micro-batch -> onnxruntime -> alerts, at least once.

It never imports torch: onnxruntime and numpy are all it needs to score.
"""
