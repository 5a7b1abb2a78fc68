"""``python -m bench [name ...]``: run the named benchmarks (default: all) and write bench/results/<name>.*"""

from __future__ import annotations

import argparse
import sys

from bench import backfill, capture_latency, pipeline, reconcile, stack_start, tracing, transforms
from bench.common import write_results
from stack.errors import StackError

BENCHMARKS = {
    "backfill": backfill,
    "capture_latency": capture_latency,
    "pipeline": pipeline,
    "reconcile": reconcile,
    "stack_start": stack_start,
    "tracing": tracing,
    "transforms": transforms,
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench", description=__doc__)
    p.add_argument("names", nargs="*", metavar="name", help=f"of {', '.join(BENCHMARKS)} (default: all)")
    args = p.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        p.error(f"unknown benchmark(s): {', '.join(unknown)} (known: {', '.join(BENCHMARKS)})")
    failed = 0
    for name in args.names or list(BENCHMARKS):
        module = BENCHMARKS[name]
        print(f"== {name}", flush=True)
        try:
            result = module.run()
        except StackError as err:
            print(f"{name}: stack error: {err.message}", file=sys.stderr)
            for line in err.detail:
                print(f"  {line}", file=sys.stderr)
            failed += 1
            continue
        json_path, md_path = write_results(name, result, module.markdown(result))
        print(module.markdown(result))
        print(f"wrote {json_path} and {md_path}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
