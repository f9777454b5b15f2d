// Replaced by the benchmark's sources.
