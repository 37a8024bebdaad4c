// Tests for arc/cancel_guard.hpp: cleanup that survives a second cancel,
// escalation policies, arc::force, the slot-level cancel_guard, and
// this_task::uncancel (S5-S7).
#include <arc/cancel_guard.hpp>
#include <arc/bind_cancel.hpp>

#include <arc/cancel_after.hpp>
#include <arc/cancel_source.hpp>
#include <arc/persistent_task_group.hpp>
#include <arc/reasoned.hpp>
#include <arc/shield.hpp>

#include "test_util.hpp"
#include "token_kinds.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <exception>
#include <future>
#include <string>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using boost::system::error_code;
using arc_test::run_until;

namespace {

static_assert(std::is_trivially_copyable_v<arc::escalation_policy>);
static_assert(arc::escalate::after(2).after_requests == 2);
static_assert(arc::escalate::never.after_requests == 0);

asio::awaitable<void> sleep_for(std::chrono::steady_clock::duration d)
{
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(asio::use_awaitable);
}

// A task cancelled with R1 while it waits; it catches that and returns true.
asio::awaitable<bool> wait_until_cancelled()
{
  try
  {
    co_await sleep_for(1h);
  }
  catch (const boost::system::system_error&)
  {
    co_return true;
  }
  co_return false;
}

// What a cleanup saw.
struct flush_log
{
  bool finished = false;
  bool aborted = false;
  arc::cancel_reason why;
};

// A flush during which @p requests more requests reach the task, one every
// 2 ms, each with its own reason; then it takes 10 ms more.
asio::awaitable<void> flush(arc::cancel_source task, std::vector<arc::cancel_reason> requests,
    flush_log* log, asio::cancellation_type_t type = asio::cancellation_type::terminal)
{
  try
  {
    for (const auto& r : requests)
    {
      co_await sleep_for(2ms);
      task.cancel(r, type);
    }
    co_await sleep_for(10ms);
    log->finished = true;
  }
  catch (const boost::system::system_error&)
  {
    log->aborted = true;
    log->why = arc::this_task::reason();
    throw;
  }
}

} // namespace

// --- S5, S6: cleanup ---------------------------------------------------------------

TEST(cancel_guard, s5_a_second_cancel_during_cleanup_is_absorbed_counted_and_the_cleanup_finishes)
{
  asio::io_context ctx;
  const auto R1 = arc::reason::shutdown("first");
  const auto R2 = arc::reason::user("second");
  flush_log log;
  std::size_t requests = 0;
  arc::cancel_reason reason;
  bool next_threw = false;
  arc_test::run_task(ctx, [&]() -> asio::awaitable<void> {
    auto self = arc::this_task::source();
    asio::post(ctx, [self, R1]() mutable { self.cancel(R1); });
    if (co_await wait_until_cancelled())
    {
      co_await asio::this_coro::reset_cancellation_state();
      const std::vector<arc::cancel_reason> more{R2};
      co_await arc::cleanup(flush(self, more, &log), arc::escalate::never);
      requests = arc::this_task::requests();
      reason = arc::this_task::reason();
      try
      {
        co_await sleep_for(1h); // the absorbed request is delivered now
      }
      catch (const boost::system::system_error&)
      {
        next_threw = true;
      }
    }
  }());
  EXPECT_TRUE(log.finished);
  EXPECT_FALSE(log.aborted);
  EXPECT_EQ(requests, 2u) << "R2 is counted";
  EXPECT_EQ(reason, R1) << "the first reason sticks";
  EXPECT_TRUE(next_threw);
}

TEST(cancel_guard, s6_with_escalate_after_2_the_second_absorbed_request_aborts_the_cleanup_as_escalated)
{
  asio::io_context ctx;
  const auto R1 = arc::reason::shutdown("first");
  const auto R2 = arc::reason::user("second");
  const auto R3 = arc::reason::user("third");
  flush_log log;
  error_code code;
  arc::cancel_reason thrown;
  arc_test::run_task(ctx, [&]() -> asio::awaitable<void> {
    auto self = arc::this_task::source();
    asio::post(ctx, [self, R1]() mutable { self.cancel(R1); });
    if (co_await wait_until_cancelled())
    {
      co_await asio::this_coro::reset_cancellation_state();
      try
      {
        const std::vector<arc::cancel_reason> more{R2, R3};
        co_await arc::cleanup(flush(self, more, &log), arc::escalate::after(2));
      }
      catch (const arc::cancelled_error& e)
      {
        code = e.code();
        thrown = e.reason();
      }
    }
  }());
  EXPECT_FALSE(log.finished);
  EXPECT_TRUE(log.aborted);
  EXPECT_EQ(log.why.kind(), arc::reason_kind::escalated);
  EXPECT_EQ(log.why.cause(), R3) << "the cause is the request that escalated";
  EXPECT_STREQ(log.why.where().file_name(), __FILE__);
  EXPECT_EQ(code, arc::error::escalated);
  EXPECT_EQ(thrown, log.why);
}

TEST(cancel_guard, escalate_after_1_lets_the_first_request_during_the_cleanup_through)
{
  asio::io_context ctx;
  const auto R2 = arc::reason::user("second");
  flush_log log;
  arc_test::run_task(ctx, [&]() -> asio::awaitable<void> {
    auto self = arc::this_task::source();
    const std::vector<arc::cancel_reason> more{R2};
    try
    {
      co_await arc::cleanup(flush(self, more, &log), arc::escalate::after(1));
    }
    catch (const arc::cancelled_error&)
    {
    }
  }());
  EXPECT_TRUE(log.aborted);
  EXPECT_EQ(log.why.cause(), R2);
}

TEST(cancel_guard, escalate_after_a_duration_cancels_a_cleanup_that_runs_longer)
{
  asio::io_context ctx;
  const auto R1 = arc::reason::shutdown("first");
  flush_log log;
  error_code code;
  arc_test::run_task(ctx, [&]() -> asio::awaitable<void> {
    auto self = arc::this_task::source();
    asio::post(ctx, [self, R1]() mutable { self.cancel(R1); });
    if (co_await wait_until_cancelled())
    {
      co_await asio::this_coro::reset_cancellation_state();
      try
      {
        co_await arc::cleanup(
            [&]() -> asio::awaitable<void> {
              try
              {
                co_await sleep_for(1h);
              }
              catch (const boost::system::system_error&)
              {
                log.why = arc::this_task::reason();
                throw;
              }
            }(),
            arc::escalate::after(20ms));
      }
      catch (const arc::cancelled_error& e)
      {
        code = e.code();
      }
    }
  }());
  EXPECT_EQ(code, arc::error::escalated);
  EXPECT_EQ(log.why.kind(), arc::reason_kind::escalated);
  EXPECT_EQ(log.why.cause(), R1) << "the cause is the task's first reason";
}

TEST(cancel_guard, a_request_made_with_force_always_gets_through_as_itself)
{
  asio::io_context ctx;
  const auto F = arc::reason::user("now");
  flush_log log;
  arc_test::run_task(ctx, [&]() -> asio::awaitable<void> {
    const std::vector<arc::cancel_reason> more{F};
    try
    {
      co_await arc::cleanup(
          flush(arc::this_task::source(), more, &log, asio::cancellation_type::terminal | arc::force),
          arc::escalate::never);
    }
    catch (const arc::cancelled_error&)
    {
    }
  }());
  EXPECT_TRUE(log.aborted);
  EXPECT_EQ(log.why, F);
}

TEST(cancel_guard, a_cleanup_returns_its_value_and_rethrows_its_error)
{
  asio::io_context ctx;
  int v = 0;
  std::string what;
  arc_test::run_task(ctx, [&]() -> asio::awaitable<void> {
    v = co_await arc::cleanup([]() -> asio::awaitable<int> {
      co_await sleep_for(1ms);
      co_return 4;
    }());
    try
    {
      co_await arc::cleanup([]() -> asio::awaitable<void> {
        co_await sleep_for(1ms);
        throw std::runtime_error("flush failed");
      }());
    }
    catch (const std::runtime_error& e)
    {
      what = e.what();
    }
  }());
  EXPECT_EQ(v, 4);
  EXPECT_EQ(what, "flush failed");
}

TEST(cancel_guard, cleanup_outside_an_arc_task_throws_not_in_task)
{
  asio::io_context ctx;
  error_code code;
  asio::co_spawn(ctx,
      [&]() -> asio::awaitable<void> {
        try
        {
          co_await arc::cleanup(sleep_for(1ms));
        }
        catch (const boost::system::system_error& e)
        {
          code = e.code();
        }
      },
      asio::detached);
  ctx.run();
  EXPECT_EQ(code, arc::error::not_in_task);
}

TEST(cancel_guard, a_guard_inside_a_shield_absorbs_for_the_shields_own_work)
{
  asio::io_context ctx;
  flush_log log;
  std::size_t body_requests = 0;
  arc_test::run_task(ctx, [&]() -> asio::awaitable<void> {
    co_await arc::shield([&]() -> asio::awaitable<void> {
      // Inside the shield, this_task is the shield's work.
      const std::vector<arc::cancel_reason> more{arc::reason::user("x")};
      co_await arc::cleanup(flush(arc::this_task::source(), more, &log));
      body_requests = arc::this_task::requests();
    }());
  }());
  EXPECT_TRUE(log.finished);
  EXPECT_EQ(body_requests, 1u);
}

// --- The slot-level guard ------------------------------------------------------------------

TEST(cancel_guard, the_slot_level_guard_absorbs_then_escalates_the_nth_request_with_its_reason)
{
  asio::io_context ctx;
  arc::cancellation_signal upstream;
  arc::cancel_guard guard(arc::escalate::after(2));
  guard.attach(upstream.slot());
  asio::steady_timer t(ctx, 1h);
  error_code ec;
  bool done = false;
  arc::cancel_reason why;
  t.async_wait(asio::bind_cancellation_slot(guard.slot(), [&](error_code e) {
    ec = e;
    done = true;
  }));
  const auto R = arc::reason::user("again");
  asio::post(ctx, [&] {
    upstream.emit(arc::reason::user("once"), asio::cancellation_type::terminal);
    EXPECT_EQ(guard.absorbed(), 1u);
    EXPECT_FALSE(guard.passed());
    upstream.emit(R, asio::cancellation_type::terminal);
    why = guard.slot().reason();
  });
  run_until(ctx, [&] { return done; });
  EXPECT_EQ(ec, asio::error::operation_aborted);
  EXPECT_TRUE(guard.passed());
  EXPECT_EQ(guard.absorbed(), 1u);
  EXPECT_EQ(why.kind(), arc::reason_kind::escalated);
  EXPECT_EQ(why.cause(), R);
}

TEST(cancel_guard, the_slot_level_guard_takes_requests_from_a_plain_asio_slot_and_force)
{
  asio::io_context ctx;
  asio::cancellation_signal upstream;
  arc::cancel_guard guard; // escalate::never
  guard.attach(upstream.slot());
  asio::steady_timer t(ctx, 1h);
  error_code ec;
  bool done = false;
  t.async_wait(asio::bind_cancellation_slot(guard.slot(), [&](error_code e) {
    ec = e;
    done = true;
  }));
  asio::post(ctx, [&] {
    upstream.emit(asio::cancellation_type::terminal);
    upstream.emit(asio::cancellation_type::total);
    EXPECT_EQ(guard.absorbed(), 2u);
    EXPECT_FALSE(guard.request(asio::cancellation_type::partial));
    EXPECT_TRUE(guard.request(asio::cancellation_type::terminal | arc::force, arc::reason::user("forced")));
  });
  run_until(ctx, [&] { return done; });
  EXPECT_EQ(ec, asio::error::operation_aborted);
  EXPECT_EQ(guard.absorbed(), 3u);
  EXPECT_EQ(guard.slot().reason().message(), "forced");
}

// --- S7: uncancel ------------------------------------------------------------------------

TEST(cancel_guard, s7_uncancel_after_catching_makes_an_enclosing_with_timeout_behave_as_if_nothing_happened)
{
  asio::io_context ctx;
  std::size_t after_uncancel = 99;
  bool cancelled_after = true;
  int result = 0;
  std::exception_ptr task_result = std::make_exception_ptr(0);
  bool done = false;
  arc::co_spawn(ctx,
      [&]() -> asio::awaitable<void> {
        result = co_await arc::with_timeout(1h, [&]() -> asio::awaitable<int> {
          auto self = arc::this_task::source();
          // Not inside the co_await expression: g++ 12 miscompiles a closure
          // that owns a reference there (doc/design.md).
          auto ex = co_await asio::this_coro::executor;
          asio::post(ex, [self]() mutable { self.cancel(arc::reason::user("oops")); });
          if (co_await wait_until_cancelled())
          {
            co_await asio::this_coro::reset_cancellation_state();
            after_uncancel = arc::this_task::uncancel();
            cancelled_after = arc::this_task::cancelled();
          }
          co_await sleep_for(1ms); // runs: nothing is pending
          co_return 11;
        }());
      },
      [&](std::exception_ptr e) {
        task_result = e;
        done = true;
      });
  run_until(ctx, [&] { return done; });
  EXPECT_EQ(after_uncancel, 0u);
  EXPECT_FALSE(cancelled_after);
  EXPECT_EQ(result, 11);
  EXPECT_FALSE(task_result) << "the task completes as if never cancelled";
}

TEST(cancel_guard, uncancel_before_delivery_withdraws_the_request_and_a_later_cancel_still_gets_through)
{
  asio::io_context ctx;
  const auto R = arc::reason::user("withdrawn");
  bool slept = false, later_threw = false;
  std::vector<arc::cancel_reason> history;
  arc_test::run_task(ctx, [&]() -> asio::awaitable<void> {
    auto self = arc::this_task::source();
    self.cancel(R); // not delivered: the body runs
    EXPECT_EQ(arc::this_task::uncancel(), 0u);
    EXPECT_EQ(arc::this_task::requests(), 0u);
    EXPECT_FALSE(arc::this_task::reason());
    co_await sleep_for(1ms);
    slept = true;
    asio::post(ctx, [self]() mutable { self.cancel(arc::reason::user("later")); });
    try
    {
      co_await sleep_for(1h);
    }
    catch (const boost::system::system_error&)
    {
      later_threw = true;
    }
    history = self.history();
  }());
  EXPECT_TRUE(slept);
  EXPECT_TRUE(later_threw);
  ASSERT_EQ(history.size(), 2u) << "history keeps the withdrawn request";
  EXPECT_EQ(history[0], R);
}

TEST(cancel_guard, uncancel_below_zero_and_outside_a_task_throw_clear_errors)
{
  asio::io_context ctx;
  error_code below, outside;
  arc_test::run_task(ctx, [&]() -> asio::awaitable<void> {
    try
    {
      arc::this_task::uncancel();
    }
    catch (const boost::system::system_error& e)
    {
      below = e.code();
    }
    co_return;
  }());
  try
  {
    arc::this_task::uncancel();
  }
  catch (const boost::system::system_error& e)
  {
    outside = e.code();
  }
  EXPECT_EQ(below, arc::error::not_cancelled);
  EXPECT_EQ(outside, arc::error::not_in_task);
}

// --- cancel_and_wait ------------------------------------------------------------------------

namespace {

static_assert(std::is_same_v<asio::completion_signature_of_t<decltype(arc::cancel_and_wait(
                                 std::declval<const arc::task_handle<int>&>(), arc::cancel_reason(),
                                 asio::deferred))>,
    void(std::exception_ptr)>);

// The outcome of cancel_and_wait through a callback, run to completion.
template <typename T>
std::exception_ptr cancel_and_wait_now(asio::io_context& ctx, const arc::task_handle<T>& h,
    const arc::cancel_reason& r, bool* inline_call = nullptr)
{
  std::exception_ptr out = std::make_exception_ptr(0);
  bool done = false, returned = false;
  arc::cancel_and_wait(h, r, [&](std::exception_ptr e) {
    out = e;
    done = true;
    if (inline_call)
      *inline_call = !returned;
  });
  returned = true;
  run_until(ctx, [&] { return done; });
  return out;
}

error_code code_of(const std::exception_ptr& e)
{
  try
  {
    std::rethrow_exception(e);
  }
  catch (const boost::system::system_error& x)
  {
    return x.code();
  }
  catch (...)
  {
    return asio::error::fault;
  }
}

asio::awaitable<int> swallow_cancellation()
{
  try
  {
    co_await sleep_for(1h);
  }
  catch (const boost::system::system_error&)
  {
  }
  co_return 1;
}

asio::awaitable<void> fail_when_cancelled()
{
  try
  {
    co_await sleep_for(1h);
  }
  catch (const boost::system::system_error&)
  {
  }
  throw std::runtime_error("cleanup failed");
}

// Takes no notice of any cancellation, ever.
asio::awaitable<void> ignore_cancellation_forever()
{
  for (;;)
  {
    try
    {
      co_await sleep_for(1h);
    }
    catch (const boost::system::system_error&)
    {
    }
    co_await asio::this_coro::reset_cancellation_state();
  }
}

// Runs a task that awaits @p wait(), cancels that task with @p why while it
// waits, and returns what the wait threw.
template <typename Wait>
std::exception_ptr await_cancelled_caller(asio::io_context& ctx, const arc::cancel_reason& why, Wait wait)
{
  arc::cancel_source caller(ctx);
  std::exception_ptr out;
  bool done = false;
  arc::co_spawn(ctx,
      [&]() -> asio::awaitable<void> {
        try
        {
          co_await wait();
        }
        catch (...)
        {
          out = std::current_exception();
        }
        done = true;
      },
      arc::bind_cancel(caller, asio::detached));
  asio::post(ctx, [&] { caller.cancel(why); });
  run_until(ctx, [&] { return done; });
  return out;
}

// @p out is cancelled_error(operation_aborted, @p why).
void expect_cancelled_by(const std::exception_ptr& out, const arc::cancel_reason& why)
{
  ASSERT_TRUE(out);
  try
  {
    std::rethrow_exception(out);
  }
  catch (const arc::cancelled_error& e)
  {
    EXPECT_EQ(e.code(), asio::error::operation_aborted);
    EXPECT_EQ(e.reason(), why);
  }
  catch (...)
  {
    ADD_FAILURE() << "not a cancelled_error";
  }
}

} // namespace

TEST(cancel_guard, cancel_and_wait_completes_normally_when_the_target_ended_cancelled)
{
  asio::io_context ctx;
  arc::persistent_task_group g(ctx);
  auto h = g.spawn(sleep_for(1h));
  const auto R = arc::reason::user("stop");
  EXPECT_FALSE(cancel_and_wait_now(ctx, h, R));
  EXPECT_TRUE(h.done());
  EXPECT_TRUE(h.ended_cancelled());
  EXPECT_EQ(h.info().reason, R);
}

TEST(cancel_guard, cancel_and_wait_reports_cancel_ignored_when_the_target_swallowed_it)
{
  asio::io_context ctx;
  arc::persistent_task_group g(ctx);
  auto h = g.spawn(swallow_cancellation());
  EXPECT_EQ(code_of(cancel_and_wait_now(ctx, h, arc::reason::user("stop"))), arc::error::cancel_ignored);
  EXPECT_FALSE(h.ended_cancelled());
}

TEST(cancel_guard, cancel_and_wait_passes_on_the_exception_of_a_target_that_failed)
{
  asio::io_context ctx;
  int errors = 0;
  arc::persistent_task_group g(ctx, {.on_error = [&](std::exception_ptr, const arc::task_info&) { ++errors; }});
  auto h = g.spawn(fail_when_cancelled());
  std::exception_ptr e = cancel_and_wait_now(ctx, h, arc::reason::user("stop"));
  ASSERT_TRUE(e);
  EXPECT_THROW(std::rethrow_exception(e), std::runtime_error);
  EXPECT_EQ(errors, 1);
}

TEST(cancel_guard, cancel_and_wait_on_a_finished_target_completes_posted_with_already_finished)
{
  asio::io_context ctx;
  arc::persistent_task_group g(ctx);
  auto h = g.spawn(sleep_for(1ms));
  run_until(ctx, [&] { return h.done(); });
  bool inline_call = true;
  EXPECT_EQ(code_of(cancel_and_wait_now(ctx, h, arc::reason::user("late"), &inline_call)),
      arc::error::already_finished);
  EXPECT_FALSE(inline_call);
  EXPECT_FALSE(h.cancelled()) << "nothing was cancelled";
}

TEST(cancel_guard, cancel_and_wait_completes_with_the_callers_own_cancellation)
{
  asio::io_context ctx;
  arc::persistent_task_group g(ctx);
  auto h = g.spawn(swallow_cancellation()); // takes no notice: runs on
  const auto C = arc::reason::user("caller gone");
  // The target ignores every cancel; the caller is cancelled meanwhile.
  auto stubborn = g.spawn(ignore_cancellation_forever());
  expect_cancelled_by(await_cancelled_caller(ctx, C,
                          [&] { return arc::cancel_and_wait(stubborn, arc::reason::user("stop"), asio::use_awaitable); }),
      C);
  EXPECT_FALSE(stubborn.done()) << "the waiting stopped; the target runs on";
  EXPECT_TRUE(stubborn.cancelled());
  g.cancel(arc::reason::user("end"), asio::cancellation_type::terminal | arc::force);
  static_cast<void>(h);
}

TEST(cancel_guard, cancel_and_wait_does_not_report_cancel_ignored_for_a_target_ending_in_its_defer_shield)
{
  asio::io_context ctx;
  arc::persistent_task_group g(ctx);
  auto h = g.spawn([]() -> asio::awaitable<int> {
    co_return co_await arc::shield(
        []() -> asio::awaitable<int> {
          co_await sleep_for(20ms);
          co_return 5;
        }());
  });
  // Once the child is inside its shield.
  asio::steady_timer t(ctx, 5ms);
  std::exception_ptr out = std::make_exception_ptr(0);
  bool done = false;
  t.async_wait([&](error_code) {
    arc::cancel_and_wait(h, arc::reason::user("stop"), [&](std::exception_ptr e) {
      out = e;
      done = true;
    });
  });
  run_until(ctx, [&] { return done; });
  EXPECT_FALSE(out) << "the child did what its shield promised";
  EXPECT_TRUE(h.ended_cancelled());
}

TEST(cancel_guard, cancel_and_wait_through_every_token_kind)
{
  {
    asio::io_context ctx;
    arc::persistent_task_group g(ctx);
    auto h = g.spawn(sleep_for(1h));
    auto f = arc::cancel_and_wait(h, arc::reason::user("f"), asio::use_future);
    ctx.run();
    EXPECT_NO_THROW(f.get());
  }
  {
    asio::io_context ctx;
    arc::persistent_task_group g(ctx);
    auto h = g.spawn(sleep_for(1h));
    std::exception_ptr out = std::make_exception_ptr(0);
    arc::cancel_and_wait(h, arc::reason::user("d"), asio::deferred)([&](std::exception_ptr e) { out = e; });
    ctx.run();
    EXPECT_FALSE(out);
  }
  {
    asio::io_context ctx;
    arc::persistent_task_group g(ctx);
    auto h = g.spawn(swallow_cancellation());
    error_code code;
    arc_test::run_task(ctx, [&]() -> asio::awaitable<void> {
      auto [e] = co_await arc::cancel_and_wait(h, arc::reason::user("t"), asio::as_tuple(asio::use_awaitable));
      code = code_of(e);
    }());
    EXPECT_EQ(code, arc::error::cancel_ignored);
  }
}

TEST(cancel_guard, cancel_and_wait_with_use_promise_completes_on_the_targets_group_executor)
{
  asio::io_context ctx;
  arc::persistent_task_group g(ctx);
  auto h = g.spawn(sleep_for(1h));
  EXPECT_EQ(h.get_executor(), asio::any_io_executor(ctx.get_executor()));
  auto p = arc::cancel_and_wait(h, arc::reason::user("p"), asio::experimental::use_promise);
  std::exception_ptr out = std::make_exception_ptr(0);
  bool called = false;
  p([&](std::exception_ptr e) {
    out = e;
    called = true;
  });
  run_until(ctx, [&] { return called; });
  EXPECT_FALSE(out);
  EXPECT_TRUE(h.ended_cancelled());
}

// --- cancel_and_wait over several targets -------------------------------------------------

namespace {

asio::awaitable<void> swallow_cancellation_void()
{
  try
  {
    co_await sleep_for(1h);
  }
  catch (const boost::system::system_error&)
  {
  }
}

// Cancels @p targets with @p r from a task of its own, and returns what it got.
std::exception_ptr cancel_all_now(asio::io_context& ctx, const std::vector<arc::task_handle<>>& targets,
    arc::cancel_reason r)
{
  std::exception_ptr out = std::make_exception_ptr(0);
  bool done = false;
  arc::cancel_and_wait(targets, std::move(r), [&](std::exception_ptr e) {
    out = e;
    done = true;
  });
  run_until(ctx, [&] { return done; });
  return out;
}

} // namespace

static_assert(std::is_same_v<asio::completion_signature_of_t<decltype(arc::cancel_and_wait(
                                 std::declval<const std::vector<arc::task_handle<>>&>(),
                                 arc::cancel_reason(), asio::deferred))>,
    void(std::exception_ptr)>);

TEST(cancel_guard, cancel_and_wait_over_several_targets_cancels_them_all_and_waits_for_all)
{
  asio::io_context ctx;
  arc::persistent_task_group g(ctx);
  const std::vector<arc::task_handle<>> targets{g.spawn(sleep_for(1h)), g.spawn(sleep_for(1h)),
      g.spawn(sleep_for(1h))};
  const auto R = arc::reason::user("all of you");
  EXPECT_FALSE(cancel_all_now(ctx, targets, R));
  for (const auto& t : targets)
  {
    EXPECT_TRUE(t.done());
    EXPECT_TRUE(t.ended_cancelled());
    EXPECT_EQ(t.info().reason, R);
  }
}

TEST(cancel_guard, cancel_and_wait_over_several_targets_reports_the_first_outcome_in_their_order)
{
  asio::io_context ctx;
  arc::persistent_task_group g(ctx, {.on_error = [](std::exception_ptr, const arc::task_info&) {}});
  const std::vector<arc::task_handle<>> targets{
      g.spawn(sleep_for(1h)), g.spawn(fail_when_cancelled()), g.spawn(swallow_cancellation_void())};
  std::exception_ptr e = cancel_all_now(ctx, targets, arc::reason::user("stop"));
  ASSERT_TRUE(e);
  EXPECT_THROW(std::rethrow_exception(e), std::runtime_error) << "the second target's failure";
  for (const auto& t : targets)
    EXPECT_TRUE(t.done()) << "all were waited for";

  const std::vector<arc::task_handle<>> ignoring{
      g.spawn(sleep_for(1h)), g.spawn(swallow_cancellation_void())};
  EXPECT_EQ(code_of(cancel_all_now(ctx, ignoring, arc::reason::user("again"))), arc::error::cancel_ignored);
}

TEST(cancel_guard, cancel_and_wait_over_several_targets_completes_with_the_callers_cancellation)
{
  asio::io_context ctx;
  arc::persistent_task_group g(ctx);
  const std::vector<arc::task_handle<>> targets{g.spawn(ignore_cancellation_forever()), g.spawn(sleep_for(1h))};
  const auto C = arc::reason::user("caller gone");
  expect_cancelled_by(await_cancelled_caller(ctx, C,
                          [&] { return arc::cancel_and_wait(targets, arc::reason::user("stop"), asio::use_awaitable); }),
      C);
  EXPECT_FALSE(targets[0].done()) << "the waiting stopped; the stubborn target runs on";
  EXPECT_TRUE(targets[0].cancelled());
  EXPECT_TRUE(targets[1].cancelled());
}

TEST(cancel_guard, cancel_and_wait_over_no_targets_or_an_empty_handle_throws_and_cancels_nothing)
{
  asio::io_context ctx;
  arc::persistent_task_group g(ctx);
  auto live = g.spawn(sleep_for(1h));
  error_code none, empty;
  try
  {
    arc::cancel_and_wait(std::vector<arc::task_handle<>>{}, arc::reason::user("x"), asio::detached);
  }
  catch (const boost::system::system_error& e)
  {
    none = e.code();
  }
  try
  {
    arc::cancel_and_wait(std::vector<arc::task_handle<>>{live, arc::task_handle<>()},
        arc::reason::user("x"), asio::detached);
  }
  catch (const boost::system::system_error& e)
  {
    empty = e.code();
  }
  EXPECT_EQ(none, boost::system::errc::invalid_argument);
  EXPECT_EQ(empty, boost::system::errc::invalid_argument);
  EXPECT_FALSE(live.cancelled()) << "nothing was cancelled";
  live.cancel();
  ctx.run();
}

TEST(cancel_guard, cancel_and_wait_over_several_targets_through_use_future_and_use_promise)
{
  asio::io_context ctx;
  arc::persistent_task_group g(ctx);
  std::vector<arc::task_handle<>> a{g.spawn(sleep_for(1h)), g.spawn(sleep_for(1h))};
  std::vector<arc::task_handle<>> b{g.spawn(sleep_for(1h)), g.spawn(sleep_for(1h))};
  auto fut = arc::cancel_and_wait(a, arc::reason::user("f"), asio::use_future);
  auto p = arc::cancel_and_wait(b, arc::reason::user("p"), asio::experimental::use_promise);
  std::exception_ptr promised = std::make_exception_ptr(0);
  p([&](std::exception_ptr e) { promised = e; });
  ctx.run();
  EXPECT_NO_THROW(fut.get());
  EXPECT_FALSE(promised);
}

TEST(cancel_guard_concurrency, cancel_and_wait_over_children_on_a_pool_from_a_foreign_thread)
{
  asio::thread_pool pool(4);
  arc::persistent_task_group g(pool.get_executor());
  std::vector<arc::task_handle<>> targets;
  for (int i = 0; i != 32; ++i)
    targets.push_back(g.spawn(sleep_for(1h)));
  std::promise<std::exception_ptr> got;
  arc::cancel_and_wait(targets, arc::reason::user("pool"), [&](std::exception_ptr e) { got.set_value(e); });
  auto fut = got.get_future();
  ASSERT_EQ(fut.wait_for(arc_test::hang_limit), std::future_status::ready);
  EXPECT_FALSE(fut.get());
  for (const auto& t : targets)
    EXPECT_TRUE(t.ended_cancelled());
  pool.join();
}

// --- task_handle::uncancel ----------------------------------------------------------------

TEST(cancel_guard, a_handle_uncancels_its_child_from_outside_before_delivery)
{
  asio::io_context ctx;
  arc::persistent_task_group g(ctx);
  bool finished = false;
  auto h = g.spawn([&]() -> asio::awaitable<void> {
    co_await sleep_for(5ms);
    finished = true;
  });
  // Cancel and withdraw before the child has run once: nothing is delivered.
  EXPECT_TRUE(h.cancel(arc::reason::user("oops")));
  EXPECT_EQ(h.uncancel(), 0u);
  EXPECT_FALSE(h.cancelled());
  run_until(ctx, [&] { return h.done(); });
  EXPECT_TRUE(finished);
  EXPECT_FALSE(h.ended_cancelled());
  error_code below, after;
  try
  {
    h.uncancel();
  }
  catch (const boost::system::system_error& e)
  {
    after = e.code();
  }
  EXPECT_EQ(after, arc::error::already_finished);
  auto h2 = g.spawn(sleep_for(1h));
  try
  {
    h2.uncancel();
  }
  catch (const boost::system::system_error& e)
  {
    below = e.code();
  }
  EXPECT_EQ(below, arc::error::not_cancelled);
  h2.cancel();
  ctx.run();
}

// --- arc::guarded ------------------------------------------------------------------------

namespace {

static_assert(std::is_same_v<asio::completion_signature_of_t<decltype(std::declval<asio::steady_timer&>().async_wait(
                                 arc::guarded(arc::escalate::never, asio::deferred)))>,
    void(error_code)>);

} // namespace

TEST(cancel_guard, guarded_absorbs_requests_through_the_tokens_slot_until_the_nth)
{
  asio::io_context ctx;
  asio::cancellation_signal sig;
  asio::steady_timer t(ctx, 1h);
  error_code ec;
  bool done = false;
  t.async_wait(arc::guarded(arc::escalate::after(2),
      asio::bind_cancellation_slot(sig.slot(), [&](error_code e) {
        ec = e;
        done = true;
      })));
  asio::post(ctx, [&] {
    sig.emit(asio::cancellation_type::terminal); // absorbed
    asio::post(ctx, [&] {
      EXPECT_FALSE(done) << "the first request was absorbed";
      sig.emit(asio::cancellation_type::terminal); // the second escalates
    });
  });
  run_until(ctx, [&] { return done; });
  EXPECT_EQ(ec, asio::error::operation_aborted);
  EXPECT_FALSE(sig.slot().has_handler()) << "the guard left the token's slot on completion";
}

TEST(cancel_guard, guarded_with_a_time_limit_cancels_the_operation_when_it_passes)
{
  asio::io_context ctx;
  asio::steady_timer t(ctx, 1h);
  error_code ec;
  bool done = false;
  t.async_wait(arc::guarded(arc::escalate::after(10ms), [&](error_code e) {
    ec = e;
    done = true;
  }));
  run_until(ctx, [&] { return done; });
  EXPECT_EQ(ec, asio::error::operation_aborted);
}

TEST(cancel_guard, guarded_in_a_coroutine_lets_a_cancelled_task_finish_its_write_and_escalates_later)
{
  asio::io_context ctx;
  const auto R = arc::reason::user("stop");
  bool first_finished = false;
  error_code forced_ec;
  arc::cancel_source src(ctx);
  bool done = false;
  arc::co_spawn(ctx,
      [&]() -> asio::awaitable<void> {
        asio::steady_timer t(co_await asio::this_coro::executor, 20ms);
        // The task is cancelled while this guarded wait runs: absorbed.
        auto [ec1] = co_await t.async_wait(arc::guarded(arc::escalate::never, asio::as_tuple(asio::use_awaitable)));
        first_finished = !ec1;
        co_await asio::this_coro::reset_cancellation_state();
        t.expires_after(1h);
        auto [ec2] = co_await t.async_wait(arc::guarded(arc::escalate::after(1), asio::as_tuple(asio::use_awaitable)));
        forced_ec = ec2;
      },
      arc::bind_cancel(src, [&](std::exception_ptr) { done = true; }));
  asio::steady_timer later(ctx, 5ms);
  later.async_wait([&](error_code) { src.cancel(R); });
  asio::steady_timer forced(ctx, 40ms);
  forced.async_wait([&](error_code) { src.cancel(arc::reason::user("again")); });
  run_until(ctx, [&] { return done; });
  EXPECT_TRUE(first_finished);
  EXPECT_EQ(forced_ec, asio::error::operation_aborted);
}

TEST(cancel_guard, guarded_through_every_token_kind)
{
  asio::io_context ctx;
  asio::steady_timer t1(ctx, 1ms), t2(ctx, 1ms), t3(ctx, 1ms), t4(ctx, 1ms);
  auto fut = t1.async_wait(arc::guarded(arc::escalate::never, asio::use_future));
  error_code deferred_ec = asio::error::fault, redirected = asio::error::fault;
  t2.async_wait(arc::guarded(arc::escalate::never, asio::deferred))([&](error_code e) { deferred_ec = e; });
  t3.async_wait(arc::guarded(arc::escalate::never, asio::redirect_error(asio::detached, redirected)));
  error_code awaited = asio::error::fault;
  arc::co_spawn(ctx,
      [&]() -> asio::awaitable<void> {
        co_await t4.async_wait(arc::guarded(arc::escalate::never, asio::use_awaitable));
        awaited = {};
      },
      asio::detached);
  ctx.run();
  EXPECT_NO_THROW(fut.get());
  EXPECT_FALSE(deferred_ec);
  EXPECT_FALSE(redirected);
  EXPECT_FALSE(awaited);
}


// --- arc::guarded through every token kind (test/token_kinds.hpp) ------------------------

namespace {

// Guarded with escalate::after(1), its requests coming from the fixture's
// source: the one request is passed on, escalated.
struct guarded_from_src
{
  static constexpr bool appends_reason = false;
  template <typename Token>
  auto operator()(arc_test::token_fixture& f, Token&& token) const
  {
    return arc::guarded(arc::escalate::after(1), arc::bind_cancel(f.src, std::forward<Token>(token)));
  }
};

template <typename Kind>
class guarded_token : public ::testing::Test
{
protected:
  arc_test::token_fixture f;
};

} // namespace

TYPED_TEST_SUITE(guarded_token, arc_test::all_token_kinds, arc_test::token_kind_name);

TYPED_TEST(guarded_token, the_nth_request_gets_through_as_an_escalation)
{
  auto& f = this->f;
  f.src = arc::cancel_source(f.ctx);
  const arc_test::observed o = TypeParam::run(f, guarded_from_src{},
      [&] { f.src.cancel(arc::reason::user("first")); });
  EXPECT_EQ(o.calls, 1);
  EXPECT_EQ(o.ec, asio::error::operation_aborted);
}
