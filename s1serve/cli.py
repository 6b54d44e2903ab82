"""The `s1serve` command: `serve` runs the API server, `train` launches fine-tuning, `bench` and
`eval` measure. Each subcommand's module is imported only when it runs, so `s1serve --help` and
`s1serve serve --help` import neither vLLM nor torch.
"""

from __future__ import annotations

import sys

USAGE = (
    "usage: s1serve {serve,train,bench,eval} [options]\n  serve  run the OpenAI-compatible server\n"
    "  train  fine-tune with FSDP2 (torchrun)\n  bench  compare with vLLM's server and the s1 reference loop\n"
    "  eval   test-time scaling curves (accuracy vs thinking tokens) through an OpenAI-compatible endpoint"
)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "serve":
        from server.cli import serve

        return serve(rest)
    if command == "train":
        from training.launch import main as train_main

        return train_main(rest)
    if command == "bench":
        from benchmarks.run import main as bench_main

        return bench_main(rest)
    if command == "eval":
        from evals.cli import main as eval_main

        return eval_main(rest)
    print(f"s1serve: unknown command {command!r}; use serve, train, bench or eval", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
