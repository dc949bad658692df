"""The MCP server: the bzzz tools for outside agents and IDEs (stdio, or streamable HTTP with a bearer token)."""
