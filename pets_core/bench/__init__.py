"""Benchmarks that print one JSON line last: `python -m pets_core.bench {train,plan,gpu}`."""
