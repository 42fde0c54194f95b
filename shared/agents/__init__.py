"""Tessera for agents: the MCP server (stdio and streamable HTTP), over the client SDK."""
