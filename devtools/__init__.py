"""Tooling around the product: running its servers for development, load tests and tests."""
