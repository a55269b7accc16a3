"""Performance harness: `python -m benchmarks [--quick] [--json FILE]` (docs/performance.md)."""
