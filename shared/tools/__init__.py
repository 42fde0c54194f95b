"""Measurement tools: the gRPC load generator and the retrieval and answer evaluations."""
