"""Shard writers (procedural faces, CelebA, image folders) and the streaming reader.

Submodules are imported directly (``from vaegan_dist.data.stream import ...``) so that the writers,
which run in worker processes, do not pay for importing torch.
"""
