// Anchor for arc's spawn -> cancel(reason) -> join benchmark, in Node.
//
// Starts N async tasks, each waiting on a one-hour timer with its own
// AbortSignal, aborts every controller with a reason, and awaits them all
// settled. Prints the median over a few rounds, in ns per task:
//
//     node spawn->cancel->join: 1234.5 ns/task
//
// Usage: node spawn_cancel_join.mjs [N] [rounds]   (defaults: 100000 tasks, 5 rounds)
//
// Why this shape: it is the fastest linear way to write the scenario in Node,
// so the anchor does not flatter arc.
// - One AbortSignal shared by N waiters is O(N^2) in Node 20: addEventListener
//   scans the listeners for a duplicate, and timers/promises' abortable
//   setTimeout removes its listener with removeEventListener, another scan.
//   At N = 100000 a round takes minutes.
// - AbortSignal.any([shared]) per task is linear but slower than a
//   controller per task.
// - timers/promises' setTimeout(ms, v, { signal }) builds an AbortError with a
//   stack trace per task; the wait below rejects with the reason itself.
const hour = 3600 * 1000;

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
  const controllers = new Array(n);
  const tasks = new Array(n);
  for (let i = 0; i < n; ++i) {
    controllers[i] = new AbortController();
    tasks[i] = sleeper(controllers[i].signal); // runs up to its timer at once
  }
  const reason = new Error('x');
  for (const c of controllers)
    c.abort(reason);
  const results = await Promise.allSettled(tasks);
  const elapsed = Number(process.hrtime.bigint() - start);
  const cancelled = results.filter((r) => r.status === 'rejected' && r.reason === reason).length;
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
