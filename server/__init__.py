"""s1serve HTTP server: OpenAI-compatible API with budget forcing on a vLLM engine."""

__version__ = "0.1.0"
