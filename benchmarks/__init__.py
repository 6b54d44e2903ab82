"""Side-by-side serving benchmarks: vLLM's stock server, s1serve with and without forcing, and s1's offline loop."""
