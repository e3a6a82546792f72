"""Deterministic stand-in embeddings: each word hashed into one of 64 buckets, the vector normalised.

Texts that share words are close; no model, no network. A real project names ``openai:text-embedding-3-small``.
"""

import math
import re
import zlib

DIMS = 64


def embed(texts: list[str]) -> list[list[float]]:
    return [_vector(text) for text in texts]


def _vector(text: str) -> list[float]:
    vector = [0.0] * DIMS
    for word in re.findall(r"[a-z]+", text.lower()):
        if len(word) > 2:  # "a", "is", "my": no meaning to share
            vector[zlib.crc32(word.encode()) % DIMS] += 1.0
    norm = math.sqrt(sum(value * value for value in vector)) or 1.0
    return [value / norm for value in vector]
