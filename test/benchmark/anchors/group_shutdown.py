#!/usr/bin/env python3
"""Anchor for arc's group shutdown benchmark, in asyncio.

Spawns N tasks that each sleep for an hour inside an asyncio.TaskGroup, lets
every one of them reach its sleep, then cancels the task that runs the
TaskGroup: the group cancels every child and waits for them, which is what
persistent_task_group::async_shutdown does. Prints the median over a few
rounds, in ns per task:

    asyncio TaskGroup shutdown: 1234.5 ns/task

Usage: group_shutdown.py [N] [rounds]   (defaults: 100000 tasks, 5 rounds)
"""
import asyncio
import statistics
import sys
import time


async def sleeper():
    await asyncio.sleep(3600)


async def one_round(n):
    started = asyncio.Event()

    async def owner():
        async with asyncio.TaskGroup() as tg:
            for _ in range(n):
                tg.create_task(sleeper())
            started.set()

    start = time.perf_counter_ns()
    task = asyncio.create_task(owner())
    await started.wait()
    await asyncio.sleep(0)  # every child runs up to its sleep
    task.cancel("shutdown")
    try:
        await task
    except asyncio.CancelledError:
        pass
    else:
        raise SystemExit("the TaskGroup was not cancelled")
    return (time.perf_counter_ns() - start) / n


async def main(n, rounds):
    await one_round(min(n, 1000))  # warm-up
    per_task = [await one_round(n) for _ in range(rounds)]
    print(f"asyncio TaskGroup shutdown: {statistics.median(per_task):.1f} ns/task")


if __name__ == "__main__":
    args = sys.argv[1:]
    n = int(args[0]) if len(args) > 0 else 100_000
    rounds = int(args[1]) if len(args) > 1 else 5
    asyncio.run(main(n, rounds))
