"""Walk a repository and decide which files are indexed (CONTRACT; being implemented)."""
