"""Split a file into chunks with tree-sitter (CONTRACT; being implemented)."""
