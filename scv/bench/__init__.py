"""Benchmarks behind ``scv bench``: each runs real parts and returns a JSON-able report."""
