"""Gateway: the edge. REST, server-sent events and an OpenAI-compatible API over HTTP/1.1, 2 and 3."""
