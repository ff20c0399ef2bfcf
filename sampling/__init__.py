"""Evaluation samplers: ImageNet FID samples, GenEval image folders and DrawBench reward metrics.

Each entry point runs as one process per device (``torchrun``) or as a single CPU process, seeds every
sample from (seed, its own index) so results do not depend on the process count, and skips work whose
files already exist, so an interrupted run resumes. See docs/evaluation.md.
"""
