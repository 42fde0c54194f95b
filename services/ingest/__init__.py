"""Ingest service: documents in, chunks to PostgreSQL, embedding work to JetStream."""
