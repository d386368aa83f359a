"""Builders and fakes the tests and benchmarks share."""
