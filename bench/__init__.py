"""Benchmarks of the local pipeline: ``python -m bench [name ...]`` (results in bench/results/)."""
