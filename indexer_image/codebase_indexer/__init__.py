"""The data plane of codebase-mcp: scan, chunk, embed, store and search one project's code."""
