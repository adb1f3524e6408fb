"""Run many seeded simulations; print failing seeds with the command that replays them.

python -m tests.raftsim.soak --seeds 0:2000 --workers 2
python -m tests.raftsim.soak --seed 1234 -v      # replay one, with its fault timeline
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
import traceback

from .sim import Simulation


def run_one(seed: int) -> tuple[int, str | None, str]:
    sim = Simulation(seed)
    try:
        result = sim.run()
    except Exception as e:
        timeline = "\n".join(sim.log[-40:])
        return seed, f"{type(e).__name__}: {e}\n{timeline}\n{traceback.format_exc()}", ""
    return seed, None, result.summary()


def replay_command(seed: int) -> str:
    return f"python -m tests.raftsim.soak --seed {seed} -v"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seeds", default="0:200", help="a range START:END of seeds")
    ap.add_argument("--seed", type=int, help="run just this seed")
    ap.add_argument("--workers", type=int, default=multiprocessing.cpu_count())
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    if args.seed is not None:
        seeds = [args.seed]
    else:
        lo, hi = (int(x) for x in args.seeds.split(":"))
        seeds = list(range(lo, hi))
    started = time.monotonic()
    failures = 0
    if len(seeds) == 1 or args.workers <= 1:
        results = map(run_one, seeds)
        for seed, err, summary in results:
            failures += report(seed, err, summary, args.verbose)
    else:
        with multiprocessing.Pool(args.workers) as pool:
            for seed, err, summary in pool.imap_unordered(run_one, seeds, chunksize=4):
                failures += report(seed, err, summary, args.verbose)
    took = time.monotonic() - started
    print(f"{len(seeds) - failures} passed, {failures} failed in {took:.1f} s")
    return 1 if failures else 0


def report(seed: int, err: str | None, summary: str, verbose: bool) -> int:
    if err is None:
        if verbose:
            print(summary)
        return 0
    print(f"FAILED seed {seed}: {err}")
    print(f"replay: {replay_command(seed)}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
