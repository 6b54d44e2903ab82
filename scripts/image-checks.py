"""HTTP checks that scripts/image-smoke.sh runs against the s1serve container and Prometheus.

Standard library only, so any python3 runs it:

    python3 scripts/image-checks.py wait URL SECONDS      # until /health answers 200
    python3 scripts/image-checks.py serve URL             # default model, capped and min-budget chats
    python3 scripts/image-checks.py stream URL OUT        # one streamed chat; the result as JSON in OUT
    python3 scripts/image-checks.py prometheus URL RULES  # the s1serve target is up, series and rules load

Each check prints what it found and exits 1 with the reason when something differs.
"""

from __future__ import annotations

import json
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

MODEL = "SmolLM2-135M-Instruct"  # the embedded default model's served name
CACHE = "/var/cache/s1serve/models/"  # where the image converts it (the S1SERVE_CACHE volume)
CAP = 16
FLOOR, CEILING = 80, 120
STREAM_THINKING = 40  # a few seconds of decoding: still running when the stop comes


class CheckFailed(Exception):
    pass


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def get(url: str, timeout: float = 10) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def post(url: str, body: dict, timeout: float = 300) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        expect(response.status == 200, f"POST {url}: HTTP {response.status}")
        return json.load(response)


def chat(base: str, budget: dict, max_tokens: int) -> dict:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "What is 2 + 3?"}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "return_token_ids": True,
        "thinking_budget": budget,
    }
    return post(f"{base}/v1/chat/completions", body)


def wait(base: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if get(f"{base}/health", timeout=3)[0] == 200:
                print(f"/health: 200 after {seconds - (deadline - time.monotonic()):.0f} s")
                return
        except OSError:
            pass
        time.sleep(2)
    raise CheckFailed(f"/health did not answer 200 within {seconds:.0f} s")


def serve(base: str) -> None:
    status, _ = get(f"{base}/health")
    expect(status == 200, f"/health: HTTP {status}")
    models = json.loads(get(f"{base}/v1/models")[1])["data"]
    expect([m["id"] for m in models] == [MODEL], f"/v1/models serves {[m['id'] for m in models]}, not {MODEL}")
    expect(models[0]["root"].startswith(CACHE), f"the model was loaded from {models[0]['root']}, not {CACHE}")
    print(f"/v1/models: {MODEL} from {models[0]['root']}")

    # The cap: exactly CAP thinking tokens in the report and in usage, the end forced, and the
    # completion's token count equal to the tokens returned.
    r = chat(base, {"max_tokens": CAP}, max_tokens=64)
    choice, usage = r["choices"][0], r["usage"]
    report = choice["thinking"]
    expect(report["thinking_tokens"] == CAP, f"capped chat: thinking_tokens {report['thinking_tokens']} != {CAP}")
    expect(report["forced_end"] is True, f"capped chat: the end was not forced: {report}")
    reasoning = usage["completion_tokens_details"]["reasoning_tokens"]
    expect(reasoning == CAP, f"capped chat: usage reasoning_tokens {reasoning} != {CAP}")
    expect(
        usage["completion_tokens"] == len(choice["token_ids"]),
        f"capped chat: usage completion_tokens {usage['completion_tokens']} != {len(choice['token_ids'])} tokens",
    )
    expect(
        usage["completion_tokens"] > report["thinking_tokens"] + report["answer_tokens"],
        f"capped chat: completion_tokens {usage['completion_tokens']} leaves no room for the delimiter: {report}",
    )
    expect(choice["message"]["content"].startswith("Final Answer:"), f"capped chat: answer {choice['message']!r}")
    print(f"capped chat: {report}, usage {usage['completion_tokens']} completion tokens, {reasoning} reasoning")

    # The min budget: the model's early end attempts become waits.
    r = chat(base, {"max_tokens": CEILING, "min_tokens": FLOOR}, max_tokens=CEILING + 80)
    choice, usage = r["choices"][0], r["usage"]
    report = choice["thinking"]
    expect(report["waits_inserted"] >= 1, f"min-budget chat: no wait inserted: {report}")
    expect(FLOOR <= report["thinking_tokens"] <= CEILING, f"min-budget chat: thinking outside the budget: {report}")
    expect("Wait" in choice["message"]["reasoning_content"], "min-budget chat: no 'Wait' in the reasoning")
    expect(
        usage["completion_tokens_details"]["reasoning_tokens"] == report["thinking_tokens"],
        f"min-budget chat: usage {usage} disagrees with the report {report}",
    )
    print(f"min-budget chat: {report}")


def stream(base: str, out: Path) -> None:
    """One streamed chat that takes a few seconds; writes OUT.started at the first chunk."""
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "count"}],
        "max_tokens": 80,
        "temperature": 0,
        "stream": True,
        "thinking_budget": {"max_tokens": STREAM_THINKING, "min_tokens": STREAM_THINKING, "wait_text": ""},
    }
    request = urllib.request.Request(
        f"{base}/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    result: dict = {"finish_reason": None, "thinking": None, "error": None, "chunks": 0}
    with urllib.request.urlopen(request, timeout=300) as response:
        for raw in response:
            line = raw.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[len("data: ") :])
            if "error" in chunk:
                result["error"] = chunk["error"]
                continue
            result["chunks"] += 1
            if result["chunks"] == 1:
                Path(f"{out}.started").touch()
            for c in chunk["choices"]:
                if c.get("finish_reason"):
                    result["finish_reason"], result["thinking"] = c["finish_reason"], c.get("thinking")
    result["expected_thinking_tokens"] = STREAM_THINKING
    out.write_text(json.dumps(result))


def prometheus(base: str, rules_file: Path, seconds: float = 90) -> None:
    def query(expr: str) -> list:
        body = json.loads(get(f"{base}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")[1])
        expect(body["status"] == "success", f"query {expr}: {body}")
        return body["data"]["result"]

    deadline = time.monotonic() + seconds
    while True:
        up = query('up{job="s1serve"}')
        series = query('count by (__name__) ({job="s1serve", __name__=~"s1serve_.+"})')
        if up and up[0]["value"][1] == "1" and series:
            break
        expect(time.monotonic() < deadline, f"no s1serve_ series scraped within {seconds:.0f} s (up: {up})")
        time.sleep(2)
    names = sorted(s["metric"]["__name__"] for s in series)
    expect("s1serve_generated_tokens_total" in names, f"s1serve_generated_tokens_total not scraped: {names}")
    print(f"prometheus: target up, {len(names)} s1serve_ series, e.g. {', '.join(names[:4])}")

    # Every rule of the rules file is loaded and, once evaluated, healthy.
    expected = len(re.findall(r"^\s*- (?:record|alert):", rules_file.read_text(), re.M))
    while True:
        groups = json.loads(get(f"{base}/api/v1/rules")[1])["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        if len(rules) == expected and all(r.get("health") != "unknown" for r in rules):
            break
        expect(time.monotonic() < deadline, f"{len(rules)} of {expected} rules loaded, not all evaluated: {rules}")
        time.sleep(2)
    broken = [f"{r['name']}: {r.get('lastError')}" for r in rules if r.get("health") != "ok"]
    expect(not broken, f"rules failing: {broken}")
    print(f"prometheus: {len(groups)} rule groups, {len(rules)} rules of {rules_file.name} loaded and evaluated")


def main(argv: list[str]) -> int:
    try:
        if argv[:1] == ["wait"] and len(argv) == 3:
            wait(argv[1], float(argv[2]))
        elif argv[:1] == ["serve"] and len(argv) == 2:
            serve(argv[1])
        elif argv[:1] == ["stream"] and len(argv) == 3:
            stream(argv[1], Path(argv[2]))
        elif argv[:1] == ["prometheus"] and len(argv) == 3:
            prometheus(argv[1], Path(argv[2]))
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except CheckFailed as e:
        print(f"image check failed: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
