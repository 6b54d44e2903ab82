"""Test-time scaling evaluation: the s1 paper's accuracy-vs-thinking curves through any OpenAI-compatible endpoint."""
