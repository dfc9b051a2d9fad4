"""Data: shard writers (procedural faces, CelebA, image folders), the manifest that describes shards, and the
streaming reader.

    codec       image bytes <-> pixels          manifest   the manifest format, checked field by field
    synthetic   ``prepare synthetic``           celeba, folder, convert   ``prepare celeba|folder``
    sources     where shards are                remote     reading a URL's bytes (no shell)
    tarstream   tar shards -> samples           stream     samples -> batches for one rank
    failures    skipped data, bounded           lifetime   workers that die with their parent

Submodules are imported directly (``from vaegan_dist.data.stream import ...``); importing this package
imports none of them.
"""
