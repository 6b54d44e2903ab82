"""Container health check: exit 0 when the server's /health answers 200, 1 otherwise.

Uses only the standard library so the image needs no curl. The port follows S1SERVE_PORT.
"""

import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    port = os.environ.get("S1SERVE_PORT", "8000")
    path = sys.argv[1] if len(sys.argv) > 1 else "/health"
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError):
        return 1


if __name__ == "__main__":
    sys.exit(main())
