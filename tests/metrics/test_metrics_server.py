"""/metrics on a real server: counters move by exactly what responses report, logs, vLLM series,
promtool, and a real Prometheus scraping it.

Everything here shares one server (tests/metrics/conftest.py). Each test reads counter deltas or
series of its own API key, so the tests do not depend on each other's traffic.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import openai
import pytest
import yaml
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families

from benchmarks.servers import free_port
from budget.spec import DEFAULT_FINAL_ANSWER_TEXT, DEFAULT_WAIT_TEXT
from tests.integration.server_process import ServerProcess
from tests.metrics.scrape import PROMETHEUS_DIR, PrometheusProcess, local_config, parse, promtool, scrape, total

pytestmark = pytest.mark.engine

QUESTION = [{"role": "user", "content": "How many r are in strawberry?"}]
FORCED = {"max_tokens": 12, "min_tokens": 12, "wait_text": ""}  # exactly 12 thinking tokens, forced end
WAITS = {"max_tokens": 150, "min_tokens": 70}  # the model tries to stop near 40 tokens: waits inserted


def traffic(client: openai.OpenAI) -> list[dict]:
    """A scripted mix: chat and completions, forced ends, waits, no budget, streaming, n=2."""
    bodies = []
    bodies.append(
        client.chat.completions.create(
            model="tiny",
            messages=QUESTION,
            max_tokens=40,
            extra_body={"thinking_budget": FORCED, "return_token_ids": True},
        ).model_dump()
    )
    bodies.append(
        client.completions.create(
            model="tiny", prompt="Question: 2+2?", max_tokens=200, extra_body={"thinking_budget": WAITS}
        ).model_dump()
    )
    bodies.append(client.chat.completions.create(model="tiny", messages=QUESTION, max_tokens=20).model_dump())
    bodies.append(
        client.completions.create(
            model="tiny", prompt="Question: 3+4?", max_tokens=30, n=2, extra_body={"thinking_budget": FORCED}
        ).model_dump()
    )
    stream = client.chat.completions.create(
        model="tiny",
        messages=QUESTION,
        max_tokens=30,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"thinking_budget": {"max_tokens": 8}},
    )
    streamed = {"id": None, "choices": [], "usage": None}
    for chunk in stream:
        data = chunk.model_dump()
        streamed["id"] = data["id"]
        for choice in data["choices"]:
            if choice.get("finish_reason"):
                streamed["choices"].append(
                    {"finish_reason": choice["finish_reason"], "thinking": choice["thinking"], "index": choice["index"]}
                )
        if data.get("usage"):
            streamed["usage"] = data["usage"]
    bodies.append(streamed)
    return bodies


def request_finish_reason(body: dict) -> str:
    reasons = {c["finish_reason"] for c in body["choices"]}
    return "length" if "length" in reasons else sorted(reasons)[0]


def expected(bodies: list[dict], tokenizer) -> dict[str, float]:
    choices = [c for b in bodies for c in b["choices"]]
    thinking = [c["thinking"] for c in choices]
    wait_len = len(tokenizer.encode(DEFAULT_WAIT_TEXT, add_special_tokens=False))
    final_len = len(tokenizer.encode(DEFAULT_FINAL_ANSWER_TEXT, add_special_tokens=False))
    return {
        "prompt": sum(b["usage"]["prompt_tokens"] for b in bodies),
        "completion": sum(b["usage"]["completion_tokens"] for b in bodies),
        "reasoning": sum(b["usage"]["completion_tokens_details"]["reasoning_tokens"] for b in bodies),
        "choices": len(choices),
        "thinking": sum(t["thinking_tokens"] for t in thinking),
        "answer": sum(t["answer_tokens"] for t in thinking),
        "waits": sum(t["waits_inserted"] for t in thinking),
        "forced": sum(t["forced_end"] for t in thinking),
        "wait_tokens": wait_len * sum(t["waits_inserted"] for t in thinking),
        "final_answer_tokens": final_len * sum(t["forced_end"] for t in thinking),
    }


def delta(before, after, name: str, **labels: str) -> float:
    return total(after, name, **labels) - total(before, name, **labels)


def test_counters_move_by_exactly_the_reported_usage(metrics_server: ServerProcess, alice, bob, tokenizer) -> None:
    before = parse(scrape(metrics_server.base_url).text)
    bodies = traffic(alice)
    bob_body = bob.chat.completions.create(
        model="tiny", messages=QUESTION, max_tokens=30, extra_body={"thinking_budget": FORCED}
    ).model_dump()
    after = parse(scrape(metrics_server.base_url).text)
    exp = expected(bodies, tokenizer)
    assert exp["waits"] > 0 and exp["forced"] >= 3, "the scripted traffic covers waits and forced ends"
    assert exp["thinking"] == exp["reasoning"]

    def d(name: str, **labels: str) -> float:
        return delta(before, after, name, model="tiny", key="alice", **labels)

    assert d("s1serve_prompt_tokens_total") == exp["prompt"]
    gen_thinking = d("s1serve_generated_tokens_total", segment="thinking")
    gen_answer = d("s1serve_generated_tokens_total", segment="answer")
    ins = {k: d("s1serve_inserted_tokens_total", kind=k) for k in ("wait", "final_answer", "delimiter")}
    assert ins["wait"] == exp["wait_tokens"]
    assert ins["final_answer"] == exp["final_answer_tokens"]
    assert gen_thinking + ins["wait"] == exp["thinking"]
    assert gen_answer + ins["final_answer"] == exp["answer"]
    assert gen_thinking + gen_answer + sum(ins.values()) == exp["completion"]
    assert ins["delimiter"] > 0

    assert d("s1serve_forcing_events_total", event="forced_end") == exp["forced"]
    assert d("s1serve_forcing_events_total", event="wait_inserted") == exp["waits"]
    assert d("s1serve_forcing_events_total", event="min_suppressed") >= 0

    assert d("s1serve_thinking_tokens_count") == exp["choices"]
    assert d("s1serve_thinking_tokens_sum") == exp["thinking"]
    assert d("s1serve_answer_tokens_count") == exp["choices"]
    assert d("s1serve_answer_tokens_sum") == exp["answer"]
    assert d("s1serve_waits_per_choice_sum") == exp["waits"]
    assert d("s1serve_waits_per_choice_bucket", le="+Inf") == exp["choices"]
    assert d("s1serve_time_to_first_token_seconds_count") == exp["choices"]
    assert d("s1serve_request_latency_seconds_count") == len(bodies)
    assert d("s1serve_time_per_output_token_seconds_count") == exp["choices"]
    # Every choice with an answer times its first answer token, budgeted or plain.
    assert d("s1serve_time_to_first_answer_token_seconds_count") == sum(
        c["thinking"]["answer_tokens"] > 0 for b in bodies for c in b["choices"]
    )

    for endpoint, chosen in (("chat", [0, 2, 4]), ("completions", [1, 3])):
        assert d("s1serve_requests_total", endpoint=endpoint, status="200") == len(chosen)
        for reason in {request_finish_reason(bodies[i]) for i in chosen}:
            want = sum(request_finish_reason(bodies[i]) == reason for i in chosen)
            assert d("s1serve_requests_total", endpoint=endpoint, status="200", finish_reason=reason) == want

    # bob's request lands in bob's series only.
    bob_delta = delta(before, after, "s1serve_prompt_tokens_total", key="bob")
    assert bob_delta == bob_body["usage"]["prompt_tokens"]
    assert delta(before, after, "s1serve_prompt_tokens_total") == exp["prompt"] + bob_delta
    assert total(after, "s1serve_requests_running", model="tiny") == 0
    assert total(after, "s1serve_requests_waiting", model="tiny") == 0


def test_no_secret_or_unknown_key_in_labels(metrics_server: ServerProcess) -> None:
    body = scrape(metrics_server.base_url).text
    assert "secret" not in body
    keys = {dict(labels)["key"] for (_, labels) in parse(body) if "key" in dict(labels)}
    assert keys <= {"alice", "bob", "carol", "none"}


def test_request_log_lines_match_the_responses(metrics_server: ServerProcess, alice) -> None:
    bodies = [
        alice.chat.completions.create(
            model="tiny", messages=QUESTION, max_tokens=200, extra_body={"thinking_budget": WAITS}
        ).model_dump(),
        alice.completions.create(
            model="tiny", prompt="Question: 1+1?", max_tokens=30, extra_body={"thinking_budget": FORCED}
        ).model_dump(),
    ]
    records = {}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(records) < len(bodies):
        for line in metrics_server.log_path.read_text(errors="replace").splitlines():
            _, sep, message = line.partition(" s1serve.requests: ")
            if sep:
                record = json.loads(message)
                records[record["request_id"]] = record
        records = {k: v for k, v in records.items() if k in {b["id"] for b in bodies}}
        time.sleep(0.2)
    for body in bodies:
        record = records[body["id"]]
        [choice] = body["choices"]
        assert record["model"] == "tiny" and record["key"] == "alice" and record["status"] == 200
        assert record["prompt_tokens"] == body["usage"]["prompt_tokens"]
        assert record["thinking_tokens"] == choice["thinking"]["thinking_tokens"]
        assert record["answer_tokens"] == choice["thinking"]["answer_tokens"]
        assert record["waits"] == choice["thinking"]["waits_inserted"]
        assert record["forced_end"] == choice["thinking"]["forced_end"]
        assert record["finish_reason"] == choice["finish_reason"]
        assert 0 < record["latency_s"] < 120
    assert records[bodies[0]["id"]]["waits"] > 0 and records[bodies[1]["id"]]["forced_end"] is True


def test_vllm_engine_series_share_the_endpoint(metrics_server: ServerProcess, alice) -> None:
    before = parse(scrape(metrics_server.base_url).text)
    alice.completions.create(model="tiny", prompt="Question: 5+5?", max_tokens=10)
    after = parse(scrape(metrics_server.base_url).text)
    for name in ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc"):
        assert any(n == name and ("model_name", "tiny") in ls for (n, ls) in after), name
    assert delta(before, after, "vllm:request_success_total") == 1
    assert delta(before, after, "vllm:generation_tokens_total") == 10
    assert total(after, "vllm:prefix_cache_queries_total") > 0
    assert total(after, "s1serve_requests_total") > 0


def test_openmetrics_when_the_scraper_asks(metrics_server: ServerProcess) -> None:
    response = scrape(metrics_server.base_url, Accept="application/openmetrics-text; version=1.0.0; charset=utf-8")
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n") and response.text.count("# EOF") == 1
    families = {f.name: f for f in openmetrics_families(response.text)}
    assert families["s1serve_generated_tokens"].type == "counter"
    assert families["s1serve_thinking_tokens"].type == "histogram"
    assert "vllm:kv_cache_usage_perc" in families
    plain = scrape(metrics_server.base_url)
    assert plain.headers["content-type"].startswith("text/plain")


def test_promtool_finds_no_problem_in_the_s1serve_series(metrics_server: ServerProcess) -> None:
    body = scrape(metrics_server.base_url).text
    result = promtool("check", "metrics", stdin=body)
    problems = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    # vLLM's own names carry a colon, which promtool's linter flags; s1serve's must be clean.
    assert not [p for p in problems if not p.startswith("vllm:")], problems
    ours = "\n".join(line for line in body.splitlines() if "s1serve_" in line.split(" ", 3)[:3][-1]) + "\n"
    assert "s1serve_generated_tokens_total" in ours
    result = promtool("check", "metrics", stdin=ours)
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), result


def test_prometheus_scrapes_the_expected_values(metrics_server: ServerProcess, carol, tokenizer, tmp_path: Path):
    target = metrics_server.base_url.removeprefix("http://")
    prometheus = PrometheusProcess(local_config(target), tmp_path, free_port())
    try:
        bodies = traffic(carol)  # carol's series hold exactly this traffic
        exp = expected(bodies, tokenizer)
        checks = {
            'sum(s1serve_prompt_tokens_total{key="carol"})': exp["prompt"],
            'sum(s1serve_generated_tokens_total{key="carol"}) + sum(s1serve_inserted_tokens_total{key="carol"})': exp[
                "completion"
            ],
            'sum(s1serve_generated_tokens_total{key="carol",segment="thinking"})'
            ' + sum(s1serve_inserted_tokens_total{key="carol",kind="wait"})': exp["thinking"],
            'sum(s1serve_forcing_events_total{key="carol",event="forced_end"})': exp["forced"],
            'sum(s1serve_forcing_events_total{key="carol",event="wait_inserted"})': exp["waits"],
            'sum(s1serve_thinking_tokens_count{key="carol"})': exp["choices"],
            'sum(s1serve_requests_total{key="carol",status="200"})': len(bodies),
        }
        deadline = time.monotonic() + 60
        got: dict[str, float | None] = {}
        while time.monotonic() < deadline:
            got = {q: prometheus.scalar(q) for q in checks}
            if got == checks:
                break
            time.sleep(1)
        assert got == checks, prometheus.log_path.read_text()[-3000:]
        [up] = prometheus.query('up{job="s1serve"}')
        assert up["value"][1] == "1"
        assert prometheus.scalar('count(vllm:kv_cache_usage_perc{model_name="tiny"})') == 1
        # The recording rules from deploy/prometheus/rules.yml loaded and evaluate over the same series.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not prometheus.query("s1serve:generated_tokens:rate1m"):
            time.sleep(1)
        segments = {r["metric"]["segment"] for r in prometheus.query("s1serve:generated_tokens:rate1m")}
        assert segments == {"thinking", "answer"}
        rules = httpx.get(f"{prometheus.base_url}/api/v1/rules", timeout=10).json()["data"]["groups"]
        assert {g["name"] for g in rules} == {"s1serve-recording", "s1serve-alerts"}
        assert all(r["health"] == "ok" for g in rules for r in g["rules"]), rules
    finally:
        prometheus.stop()


def test_promtool_accepts_the_rules() -> None:
    result = promtool("check", "rules", str(PROMETHEUS_DIR / "rules.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_accepts_the_scrape_config(tmp_path: Path) -> None:
    """The deploy config as compose uses it (rules beside it), and as the tests derive it."""
    copy = tmp_path / "deploy"
    copy.mkdir()
    for name in ("prometheus.yml", "rules.yml"):
        (copy / name).write_text((PROMETHEUS_DIR / name).read_text())
    result = promtool("check", "config", str(copy / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    derived = tmp_path / "local.yml"
    derived.write_text(yaml.safe_dump(local_config("127.0.0.1:8000")))
    result = promtool("check", "config", str(derived))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rejects_a_broken_rule(tmp_path: Path) -> None:
    """Control: the rules check really parses PromQL."""
    broken = yaml.safe_load((PROMETHEUS_DIR / "rules.yml").read_text())
    broken["groups"][0]["rules"][0]["expr"] = "sum by (model (rate(s1serve_generated_tokens_total[1m]))"
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(broken))
    assert promtool("check", "rules", str(path)).returncode != 0
