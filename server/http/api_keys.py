"""API keys: which configured key, if any, a request's Authorization header carries."""

from __future__ import annotations

import hmac

NO_KEY = "none"  # the key label of requests on a server without keys, or with no valid key


def key_name(api_keys: dict[str, str], authorization: str) -> str | None:
    """The configured name of the bearer secret in `authorization`, or None when it matches none.

    Each comparison runs in constant time, so response timing does not reveal how much of a secret matched.
    """
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    sent = token.strip().encode()
    for secret, name in api_keys.items():
        if hmac.compare_digest(sent, secret.encode()):
            return name
    return None
