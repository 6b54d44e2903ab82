"""s1serve's engine layer: the engine client vLLM's serving layer calls, which forces budgets."""
