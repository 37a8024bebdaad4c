// arc beside raw Asio: every arc benchmark BM_arc_<x> has a baseline
// BM_asio_<x> that does the same work with plain Asio. main() runs them with
// the usual --benchmark_* flags, then prints the arc/Asio ratio of each pair
// next to its DESIGN.md target. Nothing here fails on time: it measures and
// prints. A benchmark is only skipped (SkipWithError) if it did not do its work.
#include <arc.hpp>

#include "live_bytes.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>
#include <atomic>
#include <latch>

#include <unistd.h>

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

// --- Shared pieces -------------------------------------------------------------

// The shape of Asio's own cancellation handlers (a timer's op_cancellation is
// two pointers): small, stored in the slot, called with the type.
struct small_handler
{
  std::size_t* calls;
  void* op;

  void operator()(asio::cancellation_type_t type) noexcept
  {
    *calls += static_cast<std::size_t>(type) != 0;
  }
};

// The completion handler of a wait: counts the waits that were cancelled.
struct count_aborted
{
  std::size_t* aborted;

  void operator()(boost::system::error_code ec) const noexcept
  {
    *aborted += ec == asio::error::operation_aborted;
  }
};

// The completion handler of a spawned task: counts the tasks that ended, and
// those that ended with an exception.
struct count_joined
{
  std::size_t* joined;
  std::size_t* threw;

  void operator()(std::exception_ptr e) const noexcept
  {
    ++*joined;
    *threw += e != nullptr;
  }
};

asio::awaitable<void> empty_coroutine()
{
  co_return;
}

// Sleeps for an hour; sees the cancellation as an error code and returns.
asio::awaitable<void> sleeper(std::size_t* aborted)
{
  asio::steady_timer timer(co_await asio::this_coro::executor, 1h);
  auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
  *aborted += ec == asio::error::operation_aborted;
}

// Sleeps for an hour; the cancellation is thrown out of the coroutine as
// system_error(operation_aborted), as plain use_awaitable does.
asio::awaitable<void> throwing_sleeper()
{
  asio::steady_timer timer(co_await asio::this_coro::executor, 1h);
  co_await timer.async_wait(asio::use_awaitable);
}

// The same, through arc::use_awaitable: throws arc::cancelled_error.
asio::awaitable<void> reasoned_throwing_sleeper()
{
  asio::steady_timer timer(co_await asio::this_coro::executor, 1h);
  co_await timer.async_wait(arc::use_awaitable);
}

constexpr std::size_t spawn_tasks = 100'000;

// --- 1. emit on a slot with a handler installed ------------------------------------

void BM_asio_signal_emit(benchmark::State& state)
{
  asio::cancellation_signal sig;
  std::size_t calls = 0;
  int op = 0;
  for (auto _ : state)
  {
    sig.slot().emplace<small_handler>(&calls, &op);
    sig.emit(asio::cancellation_type::terminal);
    benchmark::DoNotOptimize(calls);
  }
  if (calls != static_cast<std::size_t>(state.iterations()))
    state.SkipWithError("the handler did not run once per emit");
}
BENCHMARK(BM_asio_signal_emit);

void BM_arc_signal_emit(benchmark::State& state)
{
  arc::cancellation_signal sig;
  const arc::cancel_reason why = arc::reason::user("x");
  std::size_t calls = 0;
  int op = 0;
  for (auto _ : state)
  {
    sig.slot().emplace<small_handler>(&calls, &op);
    sig.emit(why, asio::cancellation_type::terminal);
    benchmark::DoNotOptimize(calls);
  }
  if (calls != static_cast<std::size_t>(state.iterations()) || sig.reason() != why)
    state.SkipWithError("the handler did not run once per emit, or the reason was lost");
}
BENCHMARK(BM_arc_signal_emit);

// --- 2. cancel a pending timer wait ----------------------------------------------------

void BM_asio_timer_cancel(benchmark::State& state)
{
  asio::io_context ctx;
  asio::steady_timer timer(ctx, 1h);
  std::size_t aborted = 0;
  for (auto _ : state)
  {
    asio::cancellation_signal sig;
    timer.async_wait(asio::bind_cancellation_slot(sig.slot(), count_aborted{&aborted}));
    // Cancel from a handler: a raw signal may only be emitted on the
    // operation's executor.
    asio::post(ctx, [&] { sig.emit(asio::cancellation_type::terminal); });
    benchmark::DoNotOptimize(ctx.run());
    ctx.restart();
  }
  if (aborted != static_cast<std::size_t>(state.iterations()))
    state.SkipWithError("a wait was not aborted");
}
BENCHMARK(BM_asio_timer_cancel);

void BM_arc_timer_cancel(benchmark::State& state)
{
  asio::io_context ctx;
  asio::steady_timer timer(ctx, 1h);
  std::size_t aborted = 0;
  for (auto _ : state)
  {
    // A source is level-triggered: once cancelled it stays so. One per wait.
    arc::cancel_source src(ctx);
    timer.async_wait(arc::bind_cancel(src, count_aborted{&aborted}));
    asio::post(ctx, [&] { src.cancel(arc::reason::user("x")); });
    benchmark::DoNotOptimize(ctx.run());
    ctx.restart();
  }
  if (aborted != static_cast<std::size_t>(state.iterations()))
    state.SkipWithError("a wait was not aborted");
}
BENCHMARK(BM_arc_timer_cancel);

// arc only (raw Asio cannot do it): cancel from outside the io_context. The
// emit is queued to the operation's executor, one more scheduler operation.
void BM_arc_timer_cancel_from_outside(benchmark::State& state)
{
  asio::io_context ctx;
  asio::steady_timer timer(ctx, 1h);
  std::size_t aborted = 0;
  for (auto _ : state)
  {
    arc::cancel_source src(ctx);
    timer.async_wait(arc::bind_cancel(src, count_aborted{&aborted}));
    src.cancel(arc::reason::user("x"));
    benchmark::DoNotOptimize(ctx.run());
    ctx.restart();
  }
  if (aborted != static_cast<std::size_t>(state.iterations()))
    state.SkipWithError("a wait was not aborted");
}
BENCHMARK(BM_arc_timer_cancel_from_outside);

// --- 3. co_spawn(detached) + run -----------------------------------------------------

void BM_asio_co_spawn(benchmark::State& state)
{
  asio::io_context ctx;
  std::size_t handlers = 0;
  for (auto _ : state)
  {
    asio::co_spawn(ctx, empty_coroutine(), asio::detached);
    handlers += ctx.run();
    ctx.restart();
  }
  benchmark::DoNotOptimize(handlers);
  if (handlers < static_cast<std::size_t>(state.iterations()))
    state.SkipWithError("a coroutine did not run");
}
BENCHMARK(BM_asio_co_spawn);

void BM_arc_co_spawn(benchmark::State& state)
{
  asio::io_context ctx;
  std::size_t handlers = 0;
  for (auto _ : state)
  {
    arc::co_spawn(ctx, empty_coroutine(), asio::detached);
    handlers += ctx.run();
    ctx.restart();
  }
  benchmark::DoNotOptimize(handlers);
  if (handlers < static_cast<std::size_t>(state.iterations()))
    state.SkipWithError("a coroutine did not run");
}
BENCHMARK(BM_arc_co_spawn);

// --- 4. spawn 10^5 sleepers, cancel them all with a reason, join ------------------------
//
// Two variants of the same scenario. spawn_cancel_join: the sleeper takes the
// cancellation as an error code, so the time is the spawn/cancel/join
// machinery. spawn_cancel_join_throw: the sleeper lets use_awaitable throw, as
// most coroutine code does; C++ unwinding then dominates (several µs a task),
// the same in both.

void report_per_task(benchmark::State& state, std::size_t tasks = spawn_tasks)
{
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(tasks));
  // Seconds per task (printed with an SI prefix, e.g. "250n").
  state.counters["per_task"] = benchmark::Counter(static_cast<double>(tasks),
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

// Milliseconds, and an untimed warm-up: the first round pays the page faults
// of 10^5 fresh coroutine frames and timers.
void spawn_cancel_join_options(benchmark::internal::Benchmark* b)
{
  b->Unit(benchmark::kMillisecond)->MinWarmUpTime(0.3);
}

// 0: error code; 1: thrown through asio::use_awaitable; 2: thrown through
// arc::use_awaitable (arc only).
template <int Throw>
asio::awaitable<void> make_sleeper(std::size_t* aborted)
{
  if constexpr (Throw == 2)
    return reasoned_throwing_sleeper();
  else if constexpr (Throw == 1)
    return throwing_sleeper();
  else
    return sleeper(aborted);
}

template <int Throw>
bool joined_all(benchmark::State& state, std::size_t joined, std::size_t threw,
    std::size_t aborted, std::size_t tasks = spawn_tasks)
{
  const bool ok = joined == tasks
    && (Throw ? threw == tasks : threw == 0 && aborted == tasks);
  if (!ok)
    state.SkipWithError("not every task was cancelled and joined");
  return ok;
}

template <int Throw>
void BM_asio_spawn_cancel_join_impl(benchmark::State& state, std::size_t tasks = spawn_tasks)
{
  asio::io_context ctx;
  // Asio allows one operation per slot: one signal per task, reused across
  // iterations (a signal is edge-triggered, so reuse is free).
  auto signals = std::make_unique<asio::cancellation_signal[]>(tasks);
  for (auto _ : state)
  {
    std::size_t joined = 0, threw = 0, aborted = 0;
    for (std::size_t i = 0; i != tasks; ++i)
      asio::co_spawn(ctx, make_sleeper<Throw>(&aborted),
          asio::bind_cancellation_slot(signals[i].slot(), count_joined{&joined, &threw}));
    ctx.poll(); // every task now waits on its timer
    asio::post(ctx, [&] {
      for (std::size_t i = 0; i != tasks; ++i)
        signals[i].emit(asio::cancellation_type::terminal);
    });
    ctx.run();
    ctx.restart();
    benchmark::DoNotOptimize(joined);
    if (!joined_all<Throw>(state, joined, threw, aborted, tasks))
      break;
  }
  report_per_task(state, tasks);
}

template <int Throw>
void BM_arc_spawn_cancel_join_impl(benchmark::State& state, std::size_t tasks = spawn_tasks)
{
  asio::io_context ctx;
  for (auto _ : state)
  {
    std::size_t joined = 0, threw = 0, aborted = 0;
    arc::cancel_source src(ctx); // one source for every task
    for (std::size_t i = 0; i != tasks; ++i)
      arc::co_spawn(ctx, make_sleeper<Throw>(&aborted),
          arc::bind_cancel(src, count_joined{&joined, &threw}));
    ctx.poll(); // every task now waits on its timer
    asio::post(ctx, [&] { src.cancel(arc::reason::shutdown("x")); });
    ctx.run();
    ctx.restart();
    benchmark::DoNotOptimize(joined);
    if (!joined_all<Throw>(state, joined, threw, aborted, tasks))
      break;
  }
  report_per_task(state, tasks);
}

void BM_asio_spawn_cancel_join(benchmark::State& state)
{
  BM_asio_spawn_cancel_join_impl<0>(state);
}
BENCHMARK(BM_asio_spawn_cancel_join)->Apply(spawn_cancel_join_options);

void BM_arc_spawn_cancel_join(benchmark::State& state)
{
  BM_arc_spawn_cancel_join_impl<0>(state);
}
BENCHMARK(BM_arc_spawn_cancel_join)->Apply(spawn_cancel_join_options);

void BM_asio_spawn_cancel_join_throw(benchmark::State& state)
{
  BM_asio_spawn_cancel_join_impl<1>(state);
}
BENCHMARK(BM_asio_spawn_cancel_join_throw)->Apply(spawn_cancel_join_options);

void BM_arc_spawn_cancel_join_throw(benchmark::State& state)
{
  BM_arc_spawn_cancel_join_impl<1>(state);
}
BENCHMARK(BM_arc_spawn_cancel_join_throw)->Apply(spawn_cancel_join_options);

// arc::use_awaitable throws arc::cancelled_error (with the reason) where
// asio::use_awaitable throws system_error: against the same raw baseline.
void BM_asio_spawn_cancel_join_throw_reasoned(benchmark::State& state)
{
  BM_asio_spawn_cancel_join_impl<1>(state);
}
BENCHMARK(BM_asio_spawn_cancel_join_throw_reasoned)->Apply(spawn_cancel_join_options);

void BM_arc_spawn_cancel_join_throw_reasoned(benchmark::State& state)
{
  BM_arc_spawn_cancel_join_impl<2>(state);
}
BENCHMARK(BM_arc_spawn_cancel_join_throw_reasoned)->Apply(spawn_cancel_join_options);

// --- 4b. the same at N = 10^3 ... 10^6, side by side ----------------------------------

void BM_asio_scj_scale(benchmark::State& state)
{
  BM_asio_spawn_cancel_join_impl<0>(state, static_cast<std::size_t>(state.range(0)));
}
BENCHMARK(BM_asio_scj_scale)->Arg(1'000)->Arg(10'000)->Arg(100'000)->Apply(spawn_cancel_join_options);
BENCHMARK(BM_asio_scj_scale)->Arg(1'000'000)->Iterations(2)->Unit(benchmark::kMillisecond);

void BM_arc_scj_scale(benchmark::State& state)
{
  BM_arc_spawn_cancel_join_impl<0>(state, static_cast<std::size_t>(state.range(0)));
}
BENCHMARK(BM_arc_scj_scale)->Arg(1'000)->Arg(10'000)->Arg(100'000)->Apply(spawn_cancel_join_options);
BENCHMARK(BM_arc_scj_scale)->Arg(1'000'000)->Iterations(2)->Unit(benchmark::kMillisecond);

// --- 5. the same on a 4-thread thread_pool ---------------------------------------------
//
// arc serialises a task's emits with its coroutine on any executor (the task
// is held while it runs; an emit meanwhile is handed to the holder). Raw Asio
// needs a strand per task for the same safety: its baseline spawns each task
// on its own strand and emits on that strand.

constexpr std::size_t pool_tasks = 10'000;
constexpr std::size_t pool_threads = 4;

void BM_asio_pool_spawn_cancel_join(benchmark::State& state)
{
  asio::thread_pool pool(pool_threads);
  auto signals = std::make_unique<asio::cancellation_signal[]>(pool_tasks);
  for (auto _ : state)
  {
    std::atomic<std::size_t> joined = 0, started = 0;
    std::vector<asio::strand<asio::thread_pool::executor_type>> strands;
    strands.reserve(pool_tasks);
    for (std::size_t i = 0; i != pool_tasks; ++i)
    {
      strands.push_back(asio::make_strand(pool.get_executor()));
      asio::co_spawn(strands.back(),
          [&started]() -> asio::awaitable<void> {
            asio::steady_timer timer(co_await asio::this_coro::executor, 1h);
            ++started;
            co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
          },
          asio::bind_cancellation_slot(signals[i].slot(),
              [&joined](std::exception_ptr) { ++joined; }));
    }
    while (started.load() != pool_tasks)
      std::this_thread::yield();
    for (std::size_t i = 0; i != pool_tasks; ++i)
      asio::post(strands[i], [&signals, i] { signals[i].emit(asio::cancellation_type::terminal); });
    while (joined.load() != pool_tasks)
      std::this_thread::yield();
  }
  pool.join();
  state.counters["per_task"] = benchmark::Counter(static_cast<double>(pool_tasks),
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_asio_pool_spawn_cancel_join)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_arc_pool_spawn_cancel_join(benchmark::State& state)
{
  asio::thread_pool pool(pool_threads);
  for (auto _ : state)
  {
    std::atomic<std::size_t> joined = 0, started = 0;
    arc::cancel_source src;
    for (std::size_t i = 0; i != pool_tasks; ++i)
      arc::co_spawn(pool.get_executor(),
          [&started]() -> asio::awaitable<void> {
            asio::steady_timer timer(co_await asio::this_coro::executor, 1h);
            ++started;
            co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
          },
          arc::bind_cancel(src, [&joined](std::exception_ptr) { ++joined; }));
    while (started.load() != pool_tasks)
      std::this_thread::yield();
    src.cancel(arc::reason::shutdown("x")); // from a thread outside the pool
    while (joined.load() != pool_tasks)
      std::this_thread::yield();
  }
  pool.join();
  state.counters["per_task"] = benchmark::Counter(static_cast<double>(pool_tasks),
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_arc_pool_spawn_cancel_join)->Unit(benchmark::kMillisecond)->UseRealTime();

// --- 7. the persistent task group ------------------------------------------------------------
//
// g.spawn of an empty coroutine against asio::co_spawn(detached); a group's
// async_shutdown of N sleeping children against N signals over co_spawned
// sleepers (the scenario of section 4, at each N); the same on the pool.

void BM_asio_group_spawn(benchmark::State& state)
{
  BM_asio_co_spawn(state);
}
BENCHMARK(BM_asio_group_spawn);

void BM_arc_group_spawn(benchmark::State& state)
{
  asio::io_context ctx;
  arc::persistent_task_group g(ctx);
  std::size_t handlers = 0;
  for (auto _ : state)
  {
    g.spawn(empty_coroutine(), [](std::exception_ptr) {});
    handlers += ctx.run();
    ctx.restart();
  }
  benchmark::DoNotOptimize(handlers);
  if (handlers < static_cast<std::size_t>(state.iterations()) || g.size() != 0)
    state.SkipWithError("a child did not run");
}
BENCHMARK(BM_arc_group_spawn);

void BM_asio_group_shutdown(benchmark::State& state)
{
  BM_asio_spawn_cancel_join_impl<0>(state, static_cast<std::size_t>(state.range(0)));
}
BENCHMARK(BM_asio_group_shutdown)->Arg(1'000)->Arg(10'000)->Arg(100'000)->Apply(spawn_cancel_join_options);
BENCHMARK(BM_asio_group_shutdown)->Arg(1'000'000)->Iterations(2)->Unit(benchmark::kMillisecond);

void BM_arc_group_shutdown(benchmark::State& state)
{
  const auto tasks = static_cast<std::size_t>(state.range(0));
  asio::io_context ctx;
  for (auto _ : state)
  {
    std::size_t joined = 0, threw = 0, aborted = 0;
    bool complete = false;
    {
      arc::persistent_task_group g(ctx);
      for (std::size_t i = 0; i != tasks; ++i)
        g.spawn(sleeper(&aborted), count_joined{&joined, &threw});
      ctx.poll(); // every child now waits on its timer
      g.async_shutdown(arc::reason::shutdown("x"), {},
          [&](boost::system::error_code ec, arc::shutdown_report) { complete = !ec; });
      ctx.run();
      ctx.restart();
    }
    benchmark::DoNotOptimize(joined);
    if (!complete || !joined_all<0>(state, joined, threw, aborted, tasks))
      break;
  }
  report_per_task(state, tasks);
}
BENCHMARK(BM_arc_group_shutdown)->Arg(1'000)->Arg(10'000)->Arg(100'000)->Apply(spawn_cancel_join_options);
BENCHMARK(BM_arc_group_shutdown)->Arg(1'000'000)->Iterations(2)->Unit(benchmark::kMillisecond);

void BM_asio_pool_group_shutdown(benchmark::State& state)
{
  BM_asio_pool_spawn_cancel_join(state);
}
BENCHMARK(BM_asio_pool_group_shutdown)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_arc_pool_group_shutdown(benchmark::State& state)
{
  asio::thread_pool pool(pool_threads);
  for (auto _ : state)
  {
    std::atomic<std::size_t> joined = 0, started = 0;
    std::atomic<bool> complete = false;
    arc::persistent_task_group g(pool);
    for (std::size_t i = 0; i != pool_tasks; ++i)
      g.spawn(
          [&started]() -> asio::awaitable<void> {
            asio::steady_timer timer(co_await asio::this_coro::executor, 1h);
            ++started;
            co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
          },
          [&joined](std::exception_ptr) { ++joined; });
    while (started.load() != pool_tasks)
      std::this_thread::yield();
    g.async_shutdown(arc::reason::shutdown("x"), {},
        [&](boost::system::error_code ec, arc::shutdown_report) { complete = !ec; });
    while (!complete.load() || joined.load() != pool_tasks)
      std::this_thread::yield();
  }
  pool.join();
  state.counters["per_task"] = benchmark::Counter(static_cast<double>(pool_tasks),
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_arc_pool_group_shutdown)->Unit(benchmark::kMillisecond)->UseRealTime();

// --- 6. cancel() with N bound operations, while another thread unlinks --------------------
//
// arc only. N operations are bound to one source; their cancellation handler
// completes them inline. While cancel() delivers, a second thread completes
// the operations from the other end, each completion unlinking its node.
// Reports cancel()'s time per bound operation and the second thread's worst
// completion (unlink) latency: no lock is held for O(N).

class pending_op
{
public:
  virtual ~pending_op() = default;
  virtual void complete() = 0;
};

template <typename Handler>
class pending_op_impl final : public pending_op
{
public:
  explicit pending_op_impl(Handler h) : handler_(std::move(h)) {}
  void complete() override
  {
    if (!done_.exchange(true))
      std::move(handler_)();
  }

private:
  Handler handler_;
  std::atomic<bool> done_{false};
};

// An operation without any executor: emits run on the cancelling thread.
template <typename Token>
void async_pending(std::unique_ptr<pending_op>& out, Token&& token)
{
  asio::async_initiate<Token, void()>(
      [&out](auto handler)
      {
        auto slot = asio::get_associated_cancellation_slot(handler);
        auto* op = new pending_op_impl<decltype(handler)>(std::move(handler));
        out.reset(op);
        slot.assign([op](asio::cancellation_type_t) { op->complete(); });
      },
      token);
}

void BM_cancel_many_bound(benchmark::State& state)
{
  const auto n = static_cast<std::size_t>(state.range(0));
  double worst_unlink_ns = 0;
  std::vector<double> latencies;
  latencies.reserve(n / 2 * 3);
  for (auto _ : state)
  {
    state.PauseTiming();
    std::atomic<std::size_t> completed = 0;
    std::vector<std::unique_ptr<pending_op>> ops(n);
    {
      arc::cancel_source src;
      for (std::size_t i = 0; i != n; ++i)
        async_pending(ops[i], arc::bind_cancel(src, [&completed] { ++completed; }));
      std::latch go(2);
      std::thread unlinker(
          [&]
          {
            go.arrive_and_wait();
            // From the end the walk reaches last (nodes are linked at the head).
            for (std::size_t i = 0; i != n / 2; ++i)
            {
              const auto t0 = std::chrono::steady_clock::now();
              ops[i]->complete();
              const double ns =
                  std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0)
                      .count();
              worst_unlink_ns = std::max(worst_unlink_ns, ns);
              latencies.push_back(ns);
            }
          });
      state.ResumeTiming();
      go.arrive_and_wait();
      src.cancel(arc::reason::shutdown("x"));
      state.PauseTiming();
      unlinker.join();
    }
    ops.clear();
    state.ResumeTiming();
    if (completed.load() != n)
    {
      state.SkipWithError("not every operation completed once");
      break;
    }
  }
  // The worst includes the unlinker being descheduled (2 cores, 2 busy
  // threads); the 99.9th percentile shows the lock hold times.
  state.counters["worst_unlink_us"] = worst_unlink_ns / 1000;
  if (!latencies.empty())
  {
    auto p999 = latencies.begin() + static_cast<std::ptrdiff_t>(latencies.size() * 999 / 1000);
    std::nth_element(latencies.begin(), p999, latencies.end());
    state.counters["p999_unlink_us"] = *p999 / 1000;
  }
  state.counters["per_op"] = benchmark::Counter(static_cast<double>(n),
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_cancel_many_bound)
    ->Arg(1'000)->Arg(100'000)->Arg(1'000'000)
    ->Unit(benchmark::kMillisecond)->Iterations(3);

// --- Reporting --------------------------------------------------------------------------

// Forwards to the console reporter and keeps each benchmark's real time per
// iteration, in ns: the median aggregate when repetitions ran, else the median
// of the individual runs.
class recording_reporter : public benchmark::ConsoleReporter
{
public:
  using benchmark::ConsoleReporter::ConsoleReporter;

  void ReportRuns(const std::vector<Run>& runs) override
  {
    benchmark::ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs)
    {
      std::string name = run.run_name.function_name;
      if (!run.run_name.args.empty())
        name.append("/").append(run.run_name.args);
      if (run.error_occurred)
      {
        failed_[name] = run.error_message;
        continue;
      }
      const double ns = run.GetAdjustedRealTime() * 1e9
        / benchmark::GetTimeUnitMultiplier(run.time_unit);
      if (run.run_type == Run::RT_Aggregate)
      {
        if (run.aggregate_name == "median")
          medians_[name] = ns;
      }
      else
        samples_[name].push_back(ns);
    }
  }

  std::optional<double> real_ns(const std::string& name) const
  {
    if (auto m = medians_.find(name); m != medians_.end())
      return m->second;
    auto s = samples_.find(name);
    if (s == samples_.end() || s->second.empty())
      return std::nullopt;
    std::vector<double> v = s->second;
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  }

  const std::string* failure(const std::string& name) const
  {
    auto f = failed_.find(name);
    return f == failed_.end() ? nullptr : &f->second;
  }

private:
  std::map<std::string, double> medians_;
  std::map<std::string, std::vector<double>> samples_;
  std::map<std::string, std::string> failed_;
};

// --- 5. shield and guard, per operation ------------------------------------------------
//
// One arc task awaits shield_ops small coroutines, each a post: bare, and
// each through arc::shield. And shield_ops posts: bare, and each through
// arc::guarded. The per-operation cost is the time over shield_ops.

constexpr int shield_ops = 1'000;

asio::awaitable<void> one_post()
{
  co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
}

template <typename Body>
void run_in_task(benchmark::State& state, Body body)
{
  asio::io_context ctx;
  for (auto _ : state)
  {
    bool done = false;
    arc::co_spawn(ctx, body(), [&](std::exception_ptr) { done = true; });
    ctx.run();
    ctx.restart();
    if (!done)
      state.SkipWithError("the task did not finish");
  }
}

void BM_asio_shield(benchmark::State& state)
{
  run_in_task(state, []() -> asio::awaitable<void> {
    for (int i = 0; i != shield_ops; ++i)
      co_await one_post();
  });
}
BENCHMARK(BM_asio_shield);

void BM_arc_shield(benchmark::State& state)
{
  run_in_task(state, []() -> asio::awaitable<void> {
    for (int i = 0; i != shield_ops; ++i)
      co_await arc::shield(one_post());
  });
}
BENCHMARK(BM_arc_shield);

void BM_asio_guarded(benchmark::State& state)
{
  run_in_task(state, []() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    for (int i = 0; i != shield_ops; ++i)
      co_await asio::post(ex, asio::use_awaitable);
  });
}
BENCHMARK(BM_asio_guarded);

void BM_arc_guarded(benchmark::State& state)
{
  run_in_task(state, []() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    for (int i = 0; i != shield_ops; ++i)
      co_await asio::post(ex, arc::guarded(arc::escalate::never, asio::use_awaitable));
  });
}
BENCHMARK(BM_arc_guarded);

// --- 6. post through a shield executor ---------------------------------------------
//
// post_ops trivial functions posted, then run: through the io_context's
// executor, and through a shield executor around it.

constexpr int post_ops = 1'000;

template <typename Executor>
void run_posts(benchmark::State& state, asio::io_context& ctx, const Executor& ex)
{
  int ran = 0;
  for (auto _ : state)
  {
    for (int i = 0; i != post_ops; ++i)
      asio::post(ex, [&ran] { ++ran; });
    ctx.run();
    ctx.restart();
  }
  if (ran != post_ops * static_cast<int>(state.iterations()))
    state.SkipWithError("not every function ran");
}

void BM_asio_shield_post(benchmark::State& state)
{
  asio::io_context ctx;
  run_posts(state, ctx, ctx.get_executor());
}
BENCHMARK(BM_asio_shield_post);

void BM_arc_shield_post(benchmark::State& state)
{
  asio::io_context ctx;
  run_posts(state, ctx, arc::make_shield_executor(ctx.get_executor()));
}
BENCHMARK(BM_arc_shield_post);

struct pair_spec
{
  const char* key;   // BM_asio_<key> and BM_arc_<key>
  const char* label; // what the row measures
  double target;     // ratio arc/asio should stay at or below
  double per;        // divide the time per iteration by this (tasks per iteration)
};

constexpr pair_spec pairs[] = {
  {"signal_emit", "signal emplace + emit([reason, ]type)", 1.10, 1},
  {"timer_cancel", "cancel pending steady_timer wait + run", 1.05, 1},
  {"co_spawn", "co_spawn(empty, detached) + run", 1.10, 1},
  {"spawn_cancel_join", "1e5 tasks spawn->cancel->join, per task", 1.05,
      static_cast<double>(spawn_tasks)},
  {"spawn_cancel_join_throw", "  same, cancellation thrown, per task", 1.10,
      static_cast<double>(spawn_tasks)},
  {"spawn_cancel_join_throw_reasoned", "  same, thrown via arc::use_awaitable", 1.10,
      static_cast<double>(spawn_tasks)},
  {"pool_spawn_cancel_join", "1e4 tasks on a 4-thread pool, per task", 1.10,
      static_cast<double>(pool_tasks)},
  {"group_spawn", "group spawn(empty) + run vs co_spawn(detached)", 1.10, 1},
  {"pool_group_shutdown", "group shutdown, 1e4 on a 4-thread pool, per task", 1.10,
      static_cast<double>(pool_tasks)},
  {"shield", "co_await shield(x) vs co_await x, per op", 1.10, static_cast<double>(shield_ops)},
  {"guarded", "a guarded post vs the bare post, per op", 1.10, static_cast<double>(shield_ops)},
  {"shield_post", "post through a shield executor vs plain, per op", 1.10,
      static_cast<double>(post_ops)},
};

// Live heap bytes per sleeping task: @p n tasks spawned, each waiting on its
// timer with its cancellation bound (a signal per task for raw Asio, one
// source for arc), measured before the cancel; then cancelled and joined.
struct task_memory
{
  double arc = 0;
  double asio = 0;
  double group = 0; // a persistent_task_group's child
};

task_memory measure_task_memory(std::size_t n)
{
  task_memory m;
  {
    asio::io_context ctx;
    auto signals = std::make_unique<asio::cancellation_signal[]>(n);
    std::size_t joined = 0, threw = 0, aborted = 0;
    const std::ptrdiff_t before = arc_bench::live_bytes();
    for (std::size_t i = 0; i != n; ++i)
      asio::co_spawn(ctx, sleeper(&aborted),
          asio::bind_cancellation_slot(signals[i].slot(), count_joined{&joined, &threw}));
    ctx.poll();
    m.asio = static_cast<double>(arc_bench::live_bytes() - before) / static_cast<double>(n);
    asio::post(ctx, [&] {
      for (std::size_t i = 0; i != n; ++i)
        signals[i].emit(asio::cancellation_type::terminal);
    });
    ctx.run();
  }
  {
    asio::io_context ctx;
    arc::cancel_source src(ctx);
    std::size_t joined = 0, threw = 0, aborted = 0;
    const std::ptrdiff_t before = arc_bench::live_bytes();
    for (std::size_t i = 0; i != n; ++i)
      arc::co_spawn(ctx, sleeper(&aborted), arc::bind_cancel(src, count_joined{&joined, &threw}));
    ctx.poll();
    m.arc = static_cast<double>(arc_bench::live_bytes() - before) / static_cast<double>(n);
    asio::post(ctx, [&] { src.cancel(arc::reason::shutdown("x")); });
    ctx.run();
  }
  {
    asio::io_context ctx;
    std::size_t joined = 0, threw = 0, aborted = 0;
    std::ptrdiff_t before = 0;
    {
      arc::persistent_task_group g(ctx);
      before = arc_bench::live_bytes();
      for (std::size_t i = 0; i != n; ++i)
        g.spawn(sleeper(&aborted), count_joined{&joined, &threw});
      ctx.poll();
      m.group = static_cast<double>(arc_bench::live_bytes() - before) / static_cast<double>(n);
      g.async_shutdown(arc::reason::shutdown("x"), {}, [](boost::system::error_code, arc::shutdown_report) {});
      ctx.run();
    }
  }
  return m;
}

void print_memory()
{
  constexpr std::size_t n = 10'000;
  const task_memory m = measure_task_memory(n);
  std::printf("\nlive heap per sleeping task (%zu tasks, a bound slot each)\n", n);
  std::printf("%-42s %12s %12s %7s %7s  %s\n", "", "arc B", "asio B", "+B", "target", "");
  std::printf("%-42s %12.0f %12.0f %+7.0f %7s  %s\n", "co_spawn, sleeping on a timer", m.arc,
      m.asio, m.arc - m.asio, "+64", m.arc - m.asio <= 64 ? "ok" : "MISSED");
  std::printf("%-42s %12.0f %12.0f %+7.0f %7s  %s\n", "group child, sleeping on a timer", m.group,
      m.asio, m.group - m.asio, "+64", m.group - m.asio <= 64 ? "ok" : "MISSED");
}

asio::awaitable<void> failing_child()
{
  co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
  throw std::runtime_error("failed");
}

// G1: a group whose children keep failing keeps nothing of them. 10^6
// children fail, in rounds of 10^3 run to completion; the live heap is read
// after each tenfold count, beside the count on_error saw.
void print_failure_memory()
{
  asio::io_context ctx;
  std::size_t errors = 0;
  arc::persistent_task_group g(ctx, {.on_error = [&](std::exception_ptr, const arc::task_info&) { ++errors; }});
  const std::ptrdiff_t before = arc_bench::live_bytes();
  std::printf("\nlive heap of a group whose children all fail (on_error counts them)\n");
  std::printf("%-12s %14s %16s\n", "failures", "on_error calls", "live heap, B");
  std::size_t spawned = 0;
  for (const std::size_t n : {1'000UL, 10'000UL, 100'000UL, 1'000'000UL})
  {
    while (spawned < n)
    {
      for (int i = 0; i != 1'000; ++i, ++spawned)
        g.spawn(failing_child());
      ctx.run();
      ctx.restart();
    }
    std::printf("%-12zu %14zu %16td\n", n, errors, arc_bench::live_bytes() - before);
  }
}

// One table row per N for BM_arc_<key>/N beside BM_asio_<key>/N.
void print_by_n(const recording_reporter& rep, const char* title, const char* key)
{
  std::printf("\n%s\n", title);
  std::printf("%-10s %12s %12s %7s %7s  %s\n", "N", "arc ns", "asio ns", "ratio", "target", "");
  for (const long n : {1'000L, 10'000L, 100'000L, 1'000'000L})
  {
    char arc_name[64], asio_name[64];
    std::snprintf(arc_name, sizeof arc_name, "BM_arc_%s/%ld", key, n);
    std::snprintf(asio_name, sizeof asio_name, "BM_asio_%s/%ld", key, n);
    const auto a = rep.real_ns(arc_name);
    const auto b = rep.real_ns(asio_name);
    if (!a || !b)
    {
      std::printf("%-10ld %12s %12s %7s %7.2f  not run\n", n, "-", "-", "-", 1.05);
      continue;
    }
    const double ratio = *a / *b;
    std::printf("%-10ld %12.1f %12.1f %7.3f %7.2f  %s\n", n, *a / static_cast<double>(n),
        *b / static_cast<double>(n), ratio, 1.05, ratio <= 1.05 ? "ok" : "MISSED");
  }
}

void print_table(const recording_reporter& rep)
{
  std::printf("\narc vs raw Asio (real time; median of repetitions when repeated)\n");
  std::printf("%-42s %12s %12s %7s %7s  %s\n", "benchmark", "arc ns", "asio ns", "ratio",
      "target", "");
  for (const pair_spec& p : pairs)
  {
    const std::string arc_name = std::string("BM_arc_") + p.key;
    const std::string asio_name = std::string("BM_asio_") + p.key;
    const std::optional<double> arc_ns = rep.real_ns(arc_name);
    const std::optional<double> asio_ns = rep.real_ns(asio_name);
    if (!arc_ns || !asio_ns)
    {
      const std::string* why = rep.failure(arc_name);
      if (!why)
        why = rep.failure(asio_name);
      std::printf("%-42s %12s %12s %7s %7.2f  %s\n", p.label, arc_ns ? "" : "-",
          asio_ns ? "" : "-", "-", p.target,
          why ? ("skipped: " + *why).c_str() : "not run");
      continue;
    }
    const double a = *arc_ns / p.per;
    const double b = *asio_ns / p.per;
    const double ratio = a / b;
    std::printf("%-42s %12.1f %12.1f %7.3f %7.2f  %s\n", p.label, a, b, ratio, p.target,
        ratio <= p.target ? "ok" : "MISSED");
  }
  // Scaling: the same scenario at every N, side by side.
  print_by_n(rep, "spawn->cancel->join by N (ns per task, real time)", "scj_scale");
  print_by_n(rep, "group async_shutdown of N sleeping children vs N signals (ns per task, real time)",
      "group_shutdown");

  // Machine-readable lines, read by run.sh for the asyncio/Node anchors.
  std::printf("\n");
  for (const char* side : {"arc", "asio"})
    for (const char* variant : {"", "_throw"})
      if (auto ns = rep.real_ns(std::string("BM_") + side + "_spawn_cancel_join" + variant))
        std::printf("%s spawn->cancel->join%s: %.1f ns/task\n", side,
            *variant ? " (thrown)" : "", *ns / static_cast<double>(spawn_tasks));
  for (const char* side : {"arc", "asio"})
    if (auto ns = rep.real_ns(std::string("BM_") + side + "_group_shutdown/100000"))
      std::printf("%s group shutdown: %.1f ns/task\n", side, *ns / 100000.0);
#if !defined(NDEBUG) || !defined(__OPTIMIZE__)
  std::printf("\nnote: built without optimisation or with assertions; ratios are not meaningful\n");
#endif
}

// The console options the library would choose itself from --benchmark_color
// and --benchmark_counters_tabular (read before Initialize() consumes them).
benchmark::ConsoleReporter::OutputOptions console_options(int argc, char** argv)
{
  std::string_view color = "auto";
  bool tabular = false;
  for (int i = 1; i < argc; ++i)
  {
    const std::string_view arg = argv[i];
    if (arg.starts_with("--benchmark_color="))
      color = arg.substr(std::strlen("--benchmark_color="));
    else if (arg == "--benchmark_counters_tabular"
        || arg == "--benchmark_counters_tabular=true")
      tabular = true;
  }
  bool use_color = false;
  if (color == "auto")
  {
    const char* term = std::getenv("TERM");
    use_color = ::isatty(STDOUT_FILENO) && term && std::string_view(term) != "dumb";
  }
  else
    use_color = color == "true" || color == "yes" || color == "1";
  int opts = benchmark::ConsoleReporter::OO_None;
  if (use_color)
    opts |= benchmark::ConsoleReporter::OO_Color;
  if (tabular)
    opts |= benchmark::ConsoleReporter::OO_Tabular;
  return static_cast<benchmark::ConsoleReporter::OutputOptions>(opts);
}

} // namespace

int main(int argc, char** argv)
{
  const auto options = console_options(argc, argv);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv))
    return 1;
  recording_reporter reporter(options);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  print_table(reporter);
  print_memory();
  print_failure_memory();
  return 0;
}
