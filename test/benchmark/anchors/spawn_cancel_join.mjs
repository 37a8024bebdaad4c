// Anchor for arc's spawn -> cancel(reason) -> join benchmark, in Node.
//
// Starts N async tasks that each wait on a one-hour timer bound to one
// AbortSignal, aborts the controller with a reason, and awaits all of them
// settled. Prints the median over a few rounds, in ns per task:
//
//     node spawn->cancel->join: 1234.5 ns/task
//
// Usage: node spawn_cancel_join.mjs [N] [rounds]   (defaults: 100000 tasks, 5 rounds)
import { setMaxListeners } from 'node:events';

const hour = 3600 * 1000;

// An abortable one-hour wait. Not timers/promises' setTimeout(ms, v, { signal }):
// that one removes its abort listener with removeEventListener when it
// settles, a linear scan of the signal's listeners, so aborting N waiters on
// one signal costs O(N^2) (minutes for N = 100000). A `once` listener is
// dropped by the dispatch itself, which keeps this anchor linear.
function wait(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(signal.reason);
    }, { once: true });
  });
}

async function sleeper(signal) {
  await wait(hour, signal);
}

async function oneRound(n) {
  const start = process.hrtime.bigint();
  const controller = new AbortController();
  setMaxListeners(n + 1, controller.signal); // N listeners on one signal is the point
  const tasks = new Array(n);
  for (let i = 0; i < n; ++i)
    tasks[i] = sleeper(controller.signal); // runs up to its timer at once
  controller.abort(new Error('x'));
  const results = await Promise.allSettled(tasks);
  const elapsed = Number(process.hrtime.bigint() - start);
  const cancelled = results.filter((r) => r.status === 'rejected').length;
  if (cancelled !== n)
    throw new Error(`only ${cancelled} of ${n} tasks ended cancelled`);
  return elapsed / n;
}

const n = Number(process.argv[2] ?? 100000);
const rounds = Number(process.argv[3] ?? 5);
await oneRound(Math.min(n, 1000)); // warm-up
const perTask = [];
for (let r = 0; r < rounds; ++r)
  perTask.push(await oneRound(n));
perTask.sort((a, b) => a - b);
const mid = perTask.length >> 1;
const median = perTask.length % 2 ? perTask[mid] : (perTask[mid - 1] + perTask[mid]) / 2;
console.log(`node spawn->cancel->join: ${median.toFixed(1)} ns/task`);
