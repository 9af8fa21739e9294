"""Where indexing runs are declared and observed: a local registry or Kubernetes resources."""
