"""Benchmarks that print one JSON object as their last line: `python -m pets_core.bench {train,plan}`."""
