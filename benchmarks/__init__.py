"""fastconv benchmark suite: `python -m benchmarks.bench` (or `make bench`)."""
