"""Ingestion: files to parsed documents, chunks and embeddings; the model runtime."""

__distribution__ = "groundwork"  # service.own_packages checks that this package is ours
