"""Benchmarks that print figures (see bench/README.md). Nothing here runs in the test suite."""
