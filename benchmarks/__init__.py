"""Benchmarks of the operator as a process against the stand-ins with realistic API limits (``make bench``)."""
