"""The streaming chunk-growth rule, in one place (issue 26).

Later chunks of a sentence double from ``chunk_frames`` up to ``max_chunk_frames``, so less
context is vocoded twice. The synthesizer's :class:`~rtvoice.synthesizer.ChunkVocoder` cuts
chunks by :func:`next_chunk`; the GPU vocoder sizes its window buckets from
:func:`chunk_sizes`, the same sequence, so every chunk the synthesizer cuts has a bucket.
"""

from __future__ import annotations


def next_chunk(size: int, top: int) -> int:
    """The chunk after one of ``size`` frames: twice as long, at most ``top``, never shorter."""
    return max(size, min(2 * size, top))


def chunk_sizes(chunk: int, top: int) -> list[int]:
    """Every later chunk's size: ``chunk``, then :func:`next_chunk` until it stops growing."""
    sizes = [chunk]
    while (following := next_chunk(sizes[-1], top)) != sizes[-1]:
        sizes.append(following)
    return sizes
