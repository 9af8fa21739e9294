"""The MCP gateway: fastmcp tools over a local or a Kubernetes control plane."""
