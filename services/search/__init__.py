"""Search service: hybrid lexical + vector retrieval with explainable scores."""
