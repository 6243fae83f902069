"""Model serving: which bundles are in service and on what device.

  registry  bundles loaded and checked (manifest, hashes, graph, warm-up); the versions in service
  policy    which version of each model to serve (latest, or pinned; --version-policy[-file])
  watch     the repository watched on a thread of its own: new versions checked and queued
  device    the execution providers a --device gives (CUDA when a GPU is really there, else CPU)

The swap of a checked version into service happens on the loop's thread, between batches
(worker/swaps.py), so no record is scored by two versions or by none.
"""
