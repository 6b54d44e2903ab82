"""`s1serve eval` / `python -m evals`: test-time scaling curves of a model behind any OpenAI-compatible endpoint."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from evals.client import Endpoint, EndpointError
from evals.data import DataError, load_records
from evals.fit import Bound, fit_to_context, given
from evals.methods import METHODS, PlanError, Point, Sweep, parse_methods, plan
from evals.metrics import SCALING_UNIT
from evals.planfile import earlier_methods, read_plan, read_record, record_run
from evals.plot import plot
from evals.report import method_notes, render
from evals.runner import Runner, Settings, keys_for, load_rows, prompt_of
from evals.summary import summarize
from evals.tasks import TASKS, Question, build_questions, detect_task


def _ints(flag: str, minimum: int = 0):
    def parse(text: str) -> tuple[int, ...]:
        try:
            values = tuple(int(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
        if any(v < minimum for v in values):
            raise argparse.ArgumentTypeError(f"values must be at least {minimum}, got {text!r}")
        return values

    parse.__name__ = flag
    return parse


EXAMPLE = (
    "example: s1serve eval --base-url http://127.0.0.1:8000/v1 --dataset aime24 --methods budget "
    "--max-thinking 512,1024,2048 --out results/aime24"
)


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default after its help, except where there is none to show; the example stays one line."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        nothing = action.default is None or action.default is False or action.default == ""
        if "%(default)" in text or "default:" in text or action.required or nothing:
            return text
        if action.default is argparse.SUPPRESS or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="s1serve eval",
        description="Accuracy against thinking tokens (the s1 paper's scaling curves)\n"
        "through an OpenAI-compatible chat endpoint.",
        epilog=EXAMPLE,
        formatter_class=_HelpFormatter,
    )
    p.add_argument("--base-url", default="http://127.0.0.1:8000/v1", help="endpoint root, ending in /v1")
    p.add_argument("--model", default=None, help="model name (default: the first the endpoint lists)")
    # Not read here: a default taken from the environment would print the key in --help.
    p.add_argument("--api-key", default=None, help="bearer token (default: $OPENAI_API_KEY, else 'unused')")
    p.add_argument(
        "--dataset", required=True, help="a .jsonl/.json/.parquet file, aime24|math500|gpqa, or a hub id[:config]"
    )
    p.add_argument("--split", default=None, help="hub split (default: the benchmark's usual one)")
    p.add_argument("--task", choices=TASKS, default=None, help="prompt and checker (default: from the columns)")
    p.add_argument("--methods", default="budget", help=f"comma list of {', '.join(METHODS)}")
    # String defaults go through `type` like typed values, and print in --help as they are typed.
    p.add_argument(
        "--max-thinking",
        type=_ints("max-thinking"),
        default="512,1024,2048,4096,8192",
        help="thinking-token caps, comma list: the points of budget, token-conditional and rejection",
    )
    p.add_argument("--min-thinking", type=_ints("min-thinking"), default="", help="budget: min budgets (default: none)")
    p.add_argument("--num-ignore", type=_ints("num-ignore"), default="", help="budget: waits to force (default: none)")
    p.add_argument("--wait-text", default="Wait", help="text appended when an end of thinking is overridden")
    p.add_argument("--steps", type=_ints("steps", 1), default="16,32,64,128", help="step-conditional budgets")
    p.add_argument("--tokens-per-step", type=int, default=100, help="thinking tokens a step counts for")
    p.add_argument(
        "--samples",
        type=_ints("samples", 1),
        default="1,2,4,8",
        help="majority: votes per question; one pool of the largest n is drawn, each n votes over its first n",
    )
    p.add_argument(
        "--majority-max-thinking", type=int, default=None, help="majority: thinking cap per sample (default: none)"
    )
    p.add_argument(
        "--max-tries",
        type=int,
        default=64,
        help="rejection: tries per question; a question with no try within the cap after them is a failure",
    )
    p.add_argument(
        "--early-exit-every", type=int, default=256, help="early-exit: thinking tokens between answer probes"
    )
    p.add_argument("--early-exit-agree", type=int, default=3, help="early-exit: agreeing probes that end the thinking")
    p.add_argument(
        "--max-tokens",
        type=int,
        default=None,
        help="bound on all generated tokens of a sample (default: the served context minus the longest prompt)",
    )
    p.add_argument("--temperature", type=float, default=0.0, help="for single-sample methods")
    p.add_argument("--sample-temperature", type=float, default=0.7, help="for majority")
    p.add_argument("--rejection-temperature", type=float, default=1.0, help="for rejection's tries (s1's: 1)")
    p.add_argument("--plan", type=Path, default=None, help="TOML file of methods, each with its own budgets")
    p.add_argument(
        "--no-instruction",
        action="store_true",
        help="ask the question alone, as s1's harness does (no answer-format instruction after it)",
    )
    p.add_argument("--seed", type=int, default=0, help="seeds requests and the GPQA option order")
    p.add_argument("--concurrency", type=int, default=8, help="requests in flight at once")
    p.add_argument("--retries", type=int, default=5, help="retries on 429/5xx/connection errors")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds one request may take")
    p.add_argument("--limit", type=int, default=None, help="first N questions only (default: all)")
    p.add_argument("--out", required=True, type=Path, help="output folder (also the resume cache)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.api_key is None:
        args.api_key = os.environ.get("OPENAI_API_KEY", "unused")
    try:
        return asyncio.run(evaluate(args))
    except (DataError, PlanError, EndpointError) as e:
        print(f"s1serve eval: error: {e}", file=sys.stderr)
        return 2


async def evaluate(args: argparse.Namespace) -> int:
    if args.concurrency < 1 or (args.max_tokens is not None and args.max_tokens < 1) or args.max_tries < 1:
        raise PlanError("--concurrency, --max-tokens and --max-tries must be at least 1")
    sweep = Sweep(
        max_thinking=args.max_thinking,
        min_thinking=args.min_thinking,
        num_ignore=args.num_ignore,
        wait_text=args.wait_text,
        steps=args.steps,
        tokens_per_step=args.tokens_per_step,
        samples=args.samples,
        majority_max_thinking=args.majority_max_thinking,
        max_tries=args.max_tries,
        early_exit_every=args.early_exit_every,
        early_exit_agree=args.early_exit_agree,
    )
    methods = read_plan(args.plan, sweep) if args.plan else [(m, sweep) for m in parse_methods(args.methods)]
    points = plan(methods)
    rows = load_records(args.dataset, args.split)
    task = args.task or detect_task(rows)
    questions = build_questions(rows, task, args.dataset, args.seed, not args.no_instruction)[: args.limit]
    args.out.mkdir(parents=True, exist_ok=True)
    samples_path = args.out / "samples.jsonl"
    done = load_rows(samples_path)
    record = read_record(args.out)
    source = {"dataset": str(args.dataset), "task": task, "instruction": not args.no_instruction}

    endpoint = Endpoint(args.base_url, args.api_key, args.concurrency, args.retries, args.timeout)
    started = time.perf_counter()
    try:
        model = args.model or await _first_model(endpoint)
        bound = await _bound(args, endpoint, model, questions, points, record)
        settings = Settings(
            model, bound.max_tokens, args.temperature, args.sample_temperature, args.seed, args.rejection_temperature
        )
        runner = Runner(endpoint, settings, questions, points, samples_path, show_progress=not args.no_progress)
        print(f"s1serve eval: max_tokens: {bound.how}", file=sys.stderr)
        if runner.pending(done):
            # Only a run with work to do talks to the endpoint: a finished run resumes offline.
            await _check_model(endpoint, model)
            _warn_caps(points, bound.max_tokens)
            before = set(done)
            await runner.run(done)
            new_rows = [done[k] for k in set(done) - before]
        else:
            new_rows = []
    finally:
        await endpoint.close()
    wall = time.perf_counter() - started

    record.setdefault("bounds", {})[model] = {"max_tokens": bound.max_tokens, "how": bound.how}
    record_run(args.out, record, [p for p in points if p.method not in runner.failed_methods], settings, source)
    earlier = earlier_methods(record, {p.method for p in points}, source)
    settings_of = {name: Settings(**entry["settings"]) for name, entry in earlier.items()}
    every = points + [Point.from_json(p) for entry in earlier.values() for p in entry["points"]]

    def keys_of(question: Any, point: Point) -> list[str]:
        return keys_for(settings_of.get(point.method, settings), question, point)

    methods = summarize(every, questions, done, keys_of, set(runner.failed_methods))
    new_tokens = sum(r["completion_tokens"] or 0 for r in new_rows)
    refused = sum(1 for r in new_rows if r.get("error"))
    summary: dict[str, Any] = {
        "model": model,
        "base_url": args.base_url,
        "dataset": str(args.dataset),
        "task": task,
        "questions": len(questions),
        "max_tokens": {"value": bound.max_tokens, "how": bound.how},
        "scaling_unit": SCALING_UNIT,
        "methods": methods,
        "earlier_methods": {
            name: earlier[name] | {"points": len(earlier[name]["points"])} for name in earlier if name in methods
        },
        "failed_methods": runner.failed_methods,
        "failed_samples": {name: m["failed_samples"] for name, m in methods.items() if m["failed_samples"]},
        "requests_sent": endpoint.requests_sent,
        "wall_s": wall,
        "output_tokens_per_second": new_tokens / wall if new_rows and wall > 0 else None,
        "settings": {k: v for k, v in vars(args).items() if k not in ("api_key", "out")},
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    (args.out / "summary.md").write_text(render(summary))
    plot(summary, args.out / "scaling.png")
    for name, reason in runner.failed_methods.items():
        print(f"s1serve eval: {name} did not run: {reason}", file=sys.stderr)
    for note in method_notes(methods):
        print(f"s1serve eval: {note.removeprefix('- ').replace('**', '')}", file=sys.stderr)
    print(f"wrote {args.out}/summary.json, summary.md, scaling.png, samples.jsonl", file=sys.stderr)
    return 1 if runner.failed_methods or refused else 0


async def _bound(
    args: argparse.Namespace,
    endpoint: Endpoint,
    model: str,
    questions: list[Question],
    points: list[Point],
    record: dict[str, Any],
) -> Bound:
    """--max-tokens; else the bound an earlier run into --out chose for this model (so it resumes); else fitted."""
    if args.max_tokens is not None:
        return given(args.max_tokens)
    earlier = record.get("bounds", {}).get(model)
    if earlier:
        return Bound(earlier["max_tokens"], f"{earlier['how']} (chosen by an earlier run into {args.out})")
    prompts = {q.id: [prompt_of(q, p) for p in points] for q in questions}
    return await fit_to_context(endpoint, model, prompts)


def _warn_caps(points: list[Point], bound: int | None) -> None:
    for p in points:
        cap = (p.thinking_budget or {}).get("max_tokens")
        if bound is not None and isinstance(cap, int) and cap > bound:
            print(
                f"s1serve eval: warning: {p.method} {p.label} caps thinking above the bound of {bound} tokens; "
                "the server may refuse it, and its samples are then recorded as failed",
                file=sys.stderr,
            )


async def _first_model(endpoint: Endpoint) -> str:
    models = await endpoint.served_models()
    if not models:
        raise EndpointError(f"{endpoint.base_url} lists no models; pass --model")
    return models[0]


async def _check_model(endpoint: Endpoint, model: str) -> None:
    models = await endpoint.served_models()
    if models is not None and model not in models:
        raise EndpointError(f"{endpoint.base_url} does not serve model {model!r}; it serves {', '.join(models)}")
