"""The incident lab: real incidents reproduced in network namespaces (see tests/lab/README.md)."""
