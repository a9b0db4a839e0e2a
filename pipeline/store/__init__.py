"""The store: where a run's tables, parts, embeddings and the review and match decisions live
on disk, written atomically, and how they are read back.
"""
