#!/usr/bin/env python3
"""Anchor for arc's spawn -> cancel(reason) -> join benchmark, in asyncio.

Spawns N tasks that each sleep for an hour, lets every one of them reach its
sleep, cancels each with a message (task.cancel(msg)), and gathers them with
return_exceptions=True. Prints the median over a few rounds, in ns per task:

    asyncio spawn->cancel->join: 1234.5 ns/task

Usage: spawn_cancel_join.py [--no-gc] [N] [rounds]   (defaults: 100000 tasks, 5 rounds)

Python's cyclic garbage collector stays on by default, as in a real program;
with 10^5 live tasks its young-generation passes are a large share of the
time. --no-gc disables it, for the most favourable asyncio number.
"""
import asyncio
import gc
import statistics
import sys
import time


async def sleeper():
    await asyncio.sleep(3600)


async def one_round(n):
    start = time.perf_counter_ns()
    tasks = [asyncio.create_task(sleeper()) for _ in range(n)]
    await asyncio.sleep(0)  # every task runs up to its sleep
    for t in tasks:
        t.cancel("x")
    results = await asyncio.gather(*tasks, return_exceptions=True)
    elapsed = time.perf_counter_ns() - start
    cancelled = sum(isinstance(r, asyncio.CancelledError) for r in results)
    if cancelled != n:
        raise SystemExit(f"only {cancelled} of {n} tasks ended cancelled")
    return elapsed / n


async def main(n, rounds, label):
    await one_round(min(n, 1000))  # warm-up
    per_task = [await one_round(n) for _ in range(rounds)]
    print(f"{label} spawn->cancel->join: {statistics.median(per_task):.1f} ns/task")


if __name__ == "__main__":
    args = sys.argv[1:]
    label = "asyncio"
    if args and args[0] == "--no-gc":
        gc.disable()
        label = "asyncio (gc off)"
        args = args[1:]
    n = int(args[0]) if len(args) > 0 else 100_000
    rounds = int(args[1]) if len(args) > 1 else 5
    asyncio.run(main(n, rounds, label))
