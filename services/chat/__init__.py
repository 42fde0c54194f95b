"""Chat service: retrieval-augmented answers from a local GGUF model, streamed with citations."""
