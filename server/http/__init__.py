"""s1serve's HTTP layer: one ASGI gateway in front of vLLM's serving layer, and what it adds.

Nothing here imports vLLM: the gateway sees bytes and JSON, and hands the engine layer one
typed budget through the request's `RequestRecord`.
"""
