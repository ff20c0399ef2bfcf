"""ImageNet FID-suite evaluation (IS, FID, sFID, Precision, Recall) matching OpenAI's guided-diffusion evaluator.

Modules have one job each and import only what they need, so e.g. the npz reader/writer can be used by
sampling scripts without pulling in torch-fidelity:

- ``npz_io``: streaming read/write of the ``arr_0`` image batches and the reference statistics;
- ``inception``: the 2015 TF Inception-v3 graph (torch-fidelity port) with the pool_3 and mixed_6/conv taps;
- ``activations``: npz -> feature arrays, batch by batch;
- ``frechet``, ``inception_score``, ``precision_recall``: the metrics themselves.
"""
