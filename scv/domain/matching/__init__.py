"""Probabilistic (Fellegi-Sunter) record matching for person attributes.

Offline groundwork only: comparisons (``compare``), the scoring model (``model``) and
blocking keys (``blocking``). Nothing here imports Faust or Kafka, so the same code can be
trained offline (``scv.matchtrain``) and later called per event by the resolver.
"""
