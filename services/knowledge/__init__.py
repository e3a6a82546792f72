"""The knowledge base: a BM25 index over a folder of documents (the demo articles ship in ``documents/``)."""
