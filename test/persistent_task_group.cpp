// Tests for arc::persistent_task_group: failure isolation, persistent
// cancellation, handles, join, spawn after close, snapshots, this_task::group().
#include <arc/persistent_task_group.hpp>

#include <arc/error.hpp>

#include "test_util.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <algorithm>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using boost::system::error_code;
using arc_test::run_until;

namespace {

// --- Signatures -------------------------------------------------------------------

using group_t = arc::persistent_task_group;

static_assert(std::is_same_v<asio::completion_signature_of_t<decltype(std::declval<group_t&>().spawn(
                                 std::declval<asio::awaitable<int>>(), asio::deferred))>,
    void(std::exception_ptr, int)>);
static_assert(std::is_same_v<asio::completion_signature_of_t<decltype(std::declval<group_t&>().spawn(
                                 std::declval<asio::awaitable<void>>(), asio::deferred))>,
    void(std::exception_ptr)>);
static_assert(std::is_same_v<asio::completion_signature_of_t<decltype(std::declval<group_t&>().spawn(
                                 std::declval<asio::awaitable<int>>(), arc::spawn_options{},
                                 asio::deferred))>,
    void(std::exception_ptr, int)>);
static_assert(std::is_same_v<asio::completion_signature_of_t<decltype(std::declval<group_t&>().spawn(
                                 std::declval<asio::awaitable<int> (*)()>(), asio::deferred))>,
    void(std::exception_ptr, int)>,
    "a function returning an awaitable spawns as its awaitable");
static_assert(std::is_same_v<decltype(std::declval<group_t&>().spawn(
                                 std::declval<asio::awaitable<int>>())),
    arc::task_handle<int>>);
static_assert(std::is_same_v<decltype(std::declval<group_t&>().spawn(
                                 std::declval<asio::awaitable<void>>(), arc::spawn_options{})),
    arc::task_handle<void>>, "spawn_options is not taken for a token");
static_assert(std::is_same_v<asio::completion_signature_of_t<decltype(
                                 std::declval<arc::task_handle<int>&>().async_wait(asio::deferred))>,
    void(std::exception_ptr, int)>);
static_assert(std::is_same_v<asio::completion_signature_of_t<decltype(
                                 std::declval<arc::task_handle<void>&>().async_wait(asio::deferred))>,
    void(std::exception_ptr)>);
static_assert(std::is_same_v<asio::completion_signature_of_t<decltype(
                                 std::declval<group_t&>().async_join(asio::deferred))>,
    void(error_code)>);
static_assert(std::is_same_v<decltype(std::declval<group_t&>().async_join(asio::use_awaitable)),
    asio::awaitable<void>>);
static_assert(std::is_same_v<asio::completion_signature_of_t<decltype(std::declval<group_t&>().async_shutdown(
                                 arc::reason::shutdown(), arc::shutdown_options{}, asio::deferred))>,
    void(error_code, arc::shutdown_report)>);
static_assert(!std::is_copy_constructible_v<group_t>);
static_assert(std::is_copy_constructible_v<arc::group_ref>);

// --- Helpers --------------------------------------------------------------------------

// Sleeps until cancelled; records the reason it saw.
asio::awaitable<void> sleeper(arc::cancel_reason* seen = nullptr)
{
  asio::steady_timer t(co_await asio::this_coro::executor, 1h);
  try
  {
    co_await t.async_wait(asio::use_awaitable);
  }
  catch (const boost::system::system_error&)
  {
    if (seen)
      *seen = arc::this_task::reason();
    throw;
  }
}

asio::awaitable<int> value_after(std::chrono::milliseconds d, int v)
{
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(asio::use_awaitable);
  co_return v;
}

asio::awaitable<void> fail_with(std::string what)
{
  co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
  throw std::runtime_error(what);
}

// Sets *ran when the body starts and *destroyed when its frame goes.
struct frame_probe
{
  std::shared_ptr<bool> destroyed;
  ~frame_probe()
  {
    if (destroyed)
      *destroyed = true;
  }
};

asio::awaitable<void> probed(frame_probe probe, bool* ran)
{
  static_cast<void>(probe);
  *ran = true;
  co_return;
}

std::string message_of(const std::exception_ptr& e)
{
  try
  {
    std::rethrow_exception(e);
  }
  catch (const std::exception& x)
  {
    return x.what();
  }
  catch (...)
  {
    return "?";
  }
}

// --- G1: failure isolation ----------------------------------------------------------

TEST(persistent_task_group, a_failing_child_is_reported_once_at_once_and_its_siblings_run_on)
{
  asio::io_context ctx;
  std::vector<arc::task_info> errors;
  std::vector<std::string> messages;
  bool on_executor = false;
  arc::persistent_task_group g(ctx,
      {.name = "workers",
          .on_error =
              [&](std::exception_ptr e, const arc::task_info& info)
          {
            errors.push_back(info);
            messages.push_back(message_of(e));
            on_executor = ctx.get_executor().running_in_this_thread();
          }});

  int results[3] = {0, 0, 0};
  std::exception_ptr failure;
  bool failed_completed = false;
  std::size_t errors_when_failed_completed = 0;
  g.spawn(value_after(20ms, 1), arc::spawn_options{.name = "one"},
      [&](std::exception_ptr e, int v)
      {
        EXPECT_FALSE(e);
        results[0] = v;
      });
  const auto line = __LINE__ + 1;
  g.spawn(fail_with("boom"), arc::spawn_options{.name = "two"},
      [&](std::exception_ptr e)
      {
        failure = e;
        failed_completed = true;
        errors_when_failed_completed = errors.size();
      });
  g.spawn(value_after(20ms, 3), arc::spawn_options{.name = "three"},
      [&](std::exception_ptr e, int v)
      {
        EXPECT_FALSE(e);
        results[2] = v;
      });
  EXPECT_EQ(g.size(), 3u);

  run_until(ctx, [&] { return failed_completed; });
  // Reported at once: before the child's own handler ran, on its executor.
  EXPECT_EQ(errors_when_failed_completed, 1u);
  EXPECT_TRUE(on_executor);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].name, "two");
  EXPECT_EQ(errors[0].group, "workers");
  EXPECT_EQ(errors[0].where.line(), line);
  EXPECT_EQ(messages[0], "boom");
  EXPECT_EQ(message_of(failure), "boom");
  // The siblings are untouched, and the group keeps nothing of the failed one.
  EXPECT_EQ(g.size(), 2u);
  run_until(ctx, [&] { return g.size() == 0; });
  EXPECT_EQ(results[0], 1);
  EXPECT_EQ(results[2], 3);
  EXPECT_EQ(errors.size(), 1u);
}

TEST(persistent_task_group, on_error_may_spawn_a_replacement_and_cancel_the_group_from_inside)
{
  // on_error runs inside the failed child's completion: it re-enters the
  // group, which holds no lock while it runs.
  asio::io_context ctx;
  arc::group_ref self;
  int replacements = 0;
  arc::cancel_reason sibling_saw;
  arc::persistent_task_group g(ctx,
      {.on_error = [&](std::exception_ptr, const arc::task_info&)
          {
            ++replacements;
            self.spawn(value_after(1ms, 0));
            self.cancel(arc::reason::user("restart"));
          }});
  self = g;
  g.spawn(sleeper(&sibling_saw));
  g.spawn(fail_with("crash"));
  ctx.run();
  EXPECT_EQ(replacements, 1);
  EXPECT_EQ(sibling_saw.cause().message(), "restart");
  EXPECT_EQ(g.size(), 0u);
}

TEST(persistent_task_group, the_default_error_handler_prints_one_line_naming_group_task_site_and_error)
{
  asio::io_context ctx;
  arc::persistent_task_group g(ctx, {.name = "clients"});
  testing::internal::CaptureStderr();
  const auto line = __LINE__ + 1;
  g.spawn(fail_with("bad request"), arc::spawn_options{.name = "conn 7"});
  ctx.run();
  const std::string out = testing::internal::GetCapturedStderr();
  EXPECT_NE(out.find("clients"), std::string::npos) << out;
  EXPECT_NE(out.find("conn 7"), std::string::npos) << out;
  EXPECT_NE(out.find("persistent_task_group.cpp:" + std::to_string(line)), std::string::npos) << out;
  EXPECT_NE(out.find("bad request"), std::string::npos) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
}

TEST(persistent_task_group, a_child_ended_by_its_cancellation_is_not_an_error)
{
  asio::io_context ctx;
  int errors = 0;
  arc::persistent_task_group g(ctx, {.on_error = [&](std::exception_ptr, const arc::task_info&) { ++errors; }});
  std::exception_ptr result;
  bool done = false;
  g.spawn(sleeper(), [&](std::exception_ptr e) {
    result = e;
    done = true;
  });
  asio::post(ctx, [&] { g.cancel(arc::reason::user("enough")); });
  run_until(ctx, [&] { return done; });
  EXPECT_EQ(errors, 0);
  ASSERT_TRUE(result);
  try
  {
    std::rethrow_exception(result);
  }
  catch (const arc::cancelled_error& e)
  {
    EXPECT_EQ(e.reason().kind(), arc::reason_kind::parent);
    EXPECT_EQ(e.reason().cause().message(), "enough");
    EXPECT_EQ(e.code(), arc::error::parent_cancelled);
  }
}

TEST(persistent_task_group, two_requests_of_different_types_before_the_first_run_merge_and_the_first_reason_sticks)
{
  asio::io_context ctx;
  arc::persistent_task_group g(ctx);
  const auto R1 = arc::reason::user("partial first");
  const auto R2 = arc::reason::shutdown("then terminal");
  arc::cancel_reason seen;
  std::size_t requests = 0;
  bool ran = false;
  auto h = g.spawn([&]() -> asio::awaitable<void> {
    ran = true;
    try
    {
      co_await sleeper();
    }
    catch (const boost::system::system_error&)
    {
      seen = arc::this_task::reason();
      requests = arc::this_task::requests();
      throw;
    }
  });
  // Both before the child has run once: a partial request on the child, a
  // terminal one through its group.
  EXPECT_TRUE(h.cancel(R1, asio::cancellation_type::partial));
  EXPECT_EQ(g.cancel(R2, asio::cancellation_type::terminal), 1u);
  EXPECT_FALSE(ran);
  std::exception_ptr result;
  bool done = false;
  h.async_wait([&](std::exception_ptr e) {
    result = e;
    done = true;
  });
  run_until(ctx, [&] { return done; });
  EXPECT_TRUE(ran) << "the awaitable still runs; its first wait is cancelled";
  EXPECT_EQ(seen, R1) << "the first reason sticks";
  EXPECT_EQ(requests, 2u);
  ASSERT_TRUE(result);
  try
  {
    std::rethrow_exception(result);
  }
  catch (const arc::cancelled_error& e)
  {
    EXPECT_EQ(e.reason(), R1);
  }
  EXPECT_EQ(h.info().requests, 2u);
}

TEST(persistent_task_group, an_error_raised_while_cancelling_is_reported_as_an_error)
{
  asio::io_context ctx;
  std::vector<std::string> errors;
  arc::persistent_task_group g(ctx,
      {.on_error = [&](std::exception_ptr e, const arc::task_info&) { errors.push_back(message_of(e)); }});
  std::exception_ptr result;
  g.spawn(
      []() -> asio::awaitable<void>
      {
        try
        {
          co_await sleeper();
        }
        catch (const boost::system::system_error&)
        {
        }
        throw std::logic_error("cleanup failed");
      },
      [&](std::exception_ptr e) { result = e; });
  asio::post(ctx, [&] { g.cancel(arc::reason::shutdown("stop")); });
  ctx.run();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0], "cleanup failed");
  EXPECT_EQ(message_of(result), "cleanup failed") << "the token gets the error, not a cancellation";
}

TEST(persistent_task_group, an_exception_from_on_error_leaves_run_after_the_child_handler_ran)
{
  asio::io_context ctx;
  arc::persistent_task_group g(ctx,
      {.on_error = [](std::exception_ptr, const arc::task_info&) { throw std::runtime_error("from on_error"); }});
  int calls = 0;
  g.spawn(fail_with("x"), [&](std::exception_ptr) { ++calls; });
  EXPECT_THROW(
      {
        try
        {
          ctx.run();
        }
        catch (const std::runtime_error& e)
        {
          EXPECT_STREQ(e.what(), "from on_error");
          throw;
        }
      },
      std::runtime_error);
  ctx.restart();
  ctx.run();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(g.size(), 0u);
}

TEST(persistent_task_group, a_million_failures_leave_nothing_behind)
{
  // Memory flatness is measured by the benchmark; this checks the books.
  asio::io_context ctx;
  std::size_t errors = 0;
  arc::persistent_task_group g(ctx, {.on_error = [&](std::exception_ptr, const arc::task_info&) { ++errors; }});
  const std::size_t n = arc_test::stress(10'000);
  for (std::size_t i = 0; i != n; ++i)
    g.spawn(fail_with("x"));
  ctx.run();
  EXPECT_EQ(errors, n);
  EXPECT_EQ(g.size(), 0u);
  EXPECT_TRUE(g.snapshot().empty());
}

// --- Cancel: persistent -------------------------------------------------------------

TEST(persistent_task_group, cancel_reaches_every_child_as_parent_and_leaves_the_group_open)
{
  asio::io_context ctx;
  arc::persistent_task_group g(ctx, {.name = "g"});
  const arc::cancel_reason R = arc::reason::shutdown("maintenance");
  arc::cancel_reason seen[3];
  int done = 0;
  for (auto& s : seen)
    g.spawn(sleeper(&s), [&](std::exception_ptr) { ++done; });
  std::size_t reached = 0;
  asio::post(ctx, [&] { reached = g.cancel(R); });
  run_until(ctx, [&] { return done == 3; });
  EXPECT_EQ(reached, 3u);
  for (const auto& s : seen)
  {
    EXPECT_EQ(s.kind(), arc::reason_kind::parent);
    EXPECT_EQ(s.cause(), R);
  }
  EXPECT_FALSE(g.closed());

  // A child spawned afterwards starts uncancelled and runs to its end.
  std::exception_ptr late_error;
  int late = 0;
  bool late_cancelled = true;
  g.spawn(
      [&]() -> asio::awaitable<int>
      {
        late_cancelled = arc::this_task::cancelled();
        co_return co_await value_after(1ms, 42);
      },
      [&](std::exception_ptr e, int v) {
        late_error = e;
        late = v;
      });
  ctx.restart();
  ctx.run();
  EXPECT_FALSE(late_cancelled);
  EXPECT_FALSE(late_error);
  EXPECT_EQ(late, 42);
}

TEST(persistent_task_group, a_second_cancel_reaches_a_child_still_running_from_before_the_first)
{
  asio::io_context ctx;
  arc::persistent_task_group g(ctx);
  std::vector<arc::cancel_reason> old_history;
  arc::cancel_reason young_saw;
  auto old = g.spawn(
      [&]() -> asio::awaitable<void>
      {
        try
        {
          co_await sleeper();
        }
        catch (const boost::system::system_error&)
        {
        }
        // A long cleanup, cancelled again by the second request.
        co_await asio::this_coro::reset_cancellation_state();
        try
        {
          co_await sleeper();
        }
        catch (const boost::system::system_error&)
        {
          old_history = arc::this_task::source().history();
        }
      });
  const arc::cancel_reason R1 = arc::reason::user("first"), R2 = arc::reason::user("second");
  asio::post(ctx, [&] {
    EXPECT_EQ(g.cancel(R1), 1u);
    g.spawn(sleeper(&young_saw));
    asio::post(ctx, [&] { EXPECT_EQ(g.cancel(R2), 2u) << "every current child"; });
  });
  ctx.run();
  ASSERT_EQ(old_history.size(), 2u);
  EXPECT_EQ(old_history[0].cause(), R1);
  EXPECT_EQ(old_history[1].cause(), R2);
  EXPECT_EQ(young_saw.cause(), R2);
  EXPECT_TRUE(old.done());
}

// --- Spawn after close ------------------------------------------------------------------

TEST(persistent_task_group, spawn_after_close_without_a_token_throws_and_never_runs_the_awaitable)
{
  asio::io_context ctx;
  arc::persistent_task_group g(ctx);
  g.close();
  EXPECT_TRUE(g.closed());
  auto destroyed = std::make_shared<bool>(false);
  bool ran = false;
  try
  {
    g.spawn(probed(frame_probe{destroyed}, &ran));
    ADD_FAILURE() << "spawn on a closed group did not throw";
  }
  catch (const boost::system::system_error& e)
  {
    EXPECT_EQ(e.code(), arc::error::group_closed);
  }
  EXPECT_TRUE(*destroyed);
  ctx.run();
  EXPECT_FALSE(ran);
  EXPECT_EQ(g.size(), 0u);
}

TEST(persistent_task_group, spawn_after_close_with_a_token_completes_posted_with_group_closed)
{
  asio::io_context ctx;
  arc::persistent_task_group g(ctx);
  g.close();
  auto destroyed = std::make_shared<bool>(false);
  bool ran = false;
  int calls = 0;
  std::exception_ptr result;
  g.spawn(probed(frame_probe{destroyed}, &ran), [&](std::exception_ptr e) {
    ++calls;
    result = e;
  });
  EXPECT_EQ(calls, 0) << "never from inside the initiating function";
  EXPECT_TRUE(*destroyed);
  ctx.run();
  EXPECT_FALSE(ran);
  ASSERT_EQ(calls, 1);
  try
  {
    std::rethrow_exception(result);
  }
  catch (const boost::system::system_error& e)
  {
    EXPECT_EQ(e.code(), arc::error::group_closed);
  }

  // The same through a future, with a value.
  auto f = g.spawn(value_after(1ms, 1), asio::use_future);
  ctx.restart();
  ctx.run();
  try
  {
    f.get();
    ADD_FAILURE() << "no exception";
  }
  catch (const boost::system::system_error& e)
  {
    EXPECT_EQ(e.code(), arc::error::group_closed);
  }
}

// --- Tokens ----------------------------------------------------------------------------

TEST(persistent_task_group, spawn_delivers_the_result_through_every_token_kind)
{
  asio::io_context ctx;
  arc::persistent_task_group g(ctx);

  int by_callback = 0;
  g.spawn(value_after(1ms, 1), [&](std::exception_ptr, int v) { by_callback = v; });

  auto fut = g.spawn(value_after(1ms, 2), asio::use_future);

  int by_deferred = 0;
  auto op = g.spawn(value_after(1ms, 3), asio::deferred);
  EXPECT_EQ(g.size(), 2u) << "a deferred spawn starts when it is launched";
  std::move(op)([&](std::exception_ptr, int v) { by_deferred = v; });

  int by_awaitable = 0, by_tuple = 0;
  arc::co_spawn(ctx,
      [&]() -> asio::awaitable<void>
      {
        by_awaitable = co_await g.spawn(value_after(1ms, 4), asio::use_awaitable);
        auto [e, v] = co_await g.spawn(value_after(1ms, 5), asio::as_tuple(asio::use_awaitable));
        EXPECT_FALSE(e);
        by_tuple = v;
      },
      asio::detached);

  ctx.run();
  EXPECT_EQ(by_callback, 1);
  EXPECT_EQ(fut.get(), 2);
  EXPECT_EQ(by_deferred, 3);
  EXPECT_EQ(by_awaitable, 4);
  EXPECT_EQ(by_tuple, 5);
  EXPECT_EQ(g.size(), 0u);
}

TEST(persistent_task_group, the_token_slot_cancels_the_child_alone)
{
  asio::io_context ctx;
  arc::persistent_task_group g(ctx);
  asio::cancellation_signal sig;
  std::exception_ptr first;
  int second = 0;
  g.spawn(sleeper(), asio::bind_cancellation_slot(sig.slot(), [&](std::exception_ptr e) { first = e; }));
  g.spawn(value_after(10ms, 7), [&](std::exception_ptr, int v) { second = v; });
  asio::post(ctx, [&] { sig.emit(asio::cancellation_type::terminal); });
  ctx.run();
  EXPECT_TRUE(first);
  EXPECT_EQ(second, 7);
}

// --- Handles -----------------------------------------------------------------------------

TEST(persistent_task_group, a_handle_reports_waits_and_cancels_its_child)
{
  asio::io_context ctx;
  arc::persistent_task_group g(ctx, {.name = "g"});
  const auto line = __LINE__ + 1;
  arc::task_handle<int> h = g.spawn(value_after(1h, 9), arc::spawn_options{.name = "slow"});
  EXPECT_FALSE(h.done());
  EXPECT_FALSE(h.cancelled());
  arc::task_info info = h.info();
  EXPECT_EQ(info.name, "slow");
  EXPECT_EQ(info.group, "g");
  EXPECT_EQ(info.where.line(), line);
  EXPECT_EQ(info.status, arc::task_status::running);
  EXPECT_GE(info.id, 1u);

  std::exception_ptr w1, w2;
  int calls = 0;
  h.async_wait([&](std::exception_ptr e, int) {
    w1 = e;
    ++calls;
  });
  h.async_wait([&](std::exception_ptr e, int) {
    w2 = e;
    ++calls;
  });
  const arc::cancel_reason R = arc::reason::user("by handle");
  asio::post(ctx, [&] {
    EXPECT_TRUE(h.cancel(R));
    EXPECT_TRUE(h.cancelled());
    EXPECT_EQ(h.info().status, arc::task_status::cancelling);
  });
  ctx.run();
  EXPECT_EQ(calls, 2);
  EXPECT_TRUE(h.done());
  EXPECT_EQ(h.info().status, arc::task_status::done);
  for (const auto& w : {w1, w2})
  {
    try
    {
      std::rethrow_exception(w);
    }
    catch (const arc::cancelled_error& e)
    {
      EXPECT_EQ(e.reason(), R) << "the handle cancels the child itself: no parent hop";
    }
  }
  EXPECT_FALSE(h.cancel(R)) << "cancel after completion does nothing";

  // Waiting on a finished child completes at once, posted, with its result.
  int late = 0;
  h.async_wait([&](std::exception_ptr, int) { ++late; });
  EXPECT_EQ(late, 0);
  ctx.restart();
  ctx.run();
  EXPECT_EQ(late, 1);
}

TEST(persistent_task_group, a_handle_wait_yields_the_value_through_use_awaitable)
{
  asio::io_context ctx;
  arc::persistent_task_group g(ctx);
  auto h = g.spawn(value_after(1ms, 11));
  int got = 0;
  arc_test::run_task(ctx, [&]() -> asio::awaitable<void> { got = co_await h.async_wait(asio::use_awaitable); });
  EXPECT_EQ(got, 11);
}

TEST(persistent_task_group, cancelling_a_handle_wait_stops_the_waiting_only)
{
  asio::io_context ctx;
  arc::persistent_task_group g(ctx);
  auto h = g.spawn(value_after(10ms, 5));
  asio::cancellation_signal sig;
  std::exception_ptr waited;
  int calls = 0;
  h.async_wait(asio::bind_cancellation_slot(sig.slot(), [&](std::exception_ptr e, int) {
    waited = e;
    ++calls;
  }));
  asio::post(ctx, [&] { sig.emit(asio::cancellation_type::terminal); });
  run_until(ctx, [&] { return calls == 1; });
  ASSERT_TRUE(waited);
  try
  {
    std::rethrow_exception(waited);
  }
  catch (const boost::system::system_error& e)
  {
    EXPECT_EQ(e.code(), asio::error::operation_aborted);
  }
  EXPECT_FALSE(h.done());
  EXPECT_FALSE(h.cancelled());
  ctx.run();
  EXPECT_TRUE(h.done());
  EXPECT_EQ(calls, 1);
}

TEST(persistent_task_group, dropping_the_handle_leaves_the_child_running)
{
  asio::io_context ctx;
  arc::persistent_task_group g(ctx);
  bool finished = false;
  g.spawn(
      [&]() -> asio::awaitable<void>
      {
        co_await value_after(5ms, 0);
        finished = true;
      });
  EXPECT_EQ(g.size(), 1u);
  ctx.run();
  EXPECT_TRUE(finished);
}

TEST(persistent_task_group, an_empty_handle_reports_nothing_and_refuses_to_wait)
{
  arc::task_handle<void> h;
  EXPECT_FALSE(h);
  EXPECT_FALSE(h.done());
  EXPECT_FALSE(h.cancelled());
  EXPECT_FALSE(h.cancel());
  EXPECT_EQ(h.info().id, 0u);
  EXPECT_THROW(h.async_wait([](std::exception_ptr) {}), boost::system::system_error);
}

// --- Join -------------------------------------------------------------------------------

TEST(persistent_task_group, join_completes_when_the_group_is_empty_and_at_once_if_it_is)
{
  asio::io_context ctx;
  arc::persistent_task_group g(ctx);
  int joined = 0;
  error_code ec = asio::error::fault;
  g.async_join([&](error_code e) {
    ec = e;
    ++joined;
  });
  EXPECT_EQ(joined, 0) << "posted, never inline";
  ctx.run();
  EXPECT_EQ(joined, 1);
  EXPECT_FALSE(ec);

  int done = 0;
  g.spawn(value_after(5ms, 1), [&](std::exception_ptr, int) { ++done; });
  g.spawn(value_after(10ms, 2), [&](std::exception_ptr, int) { ++done; });
  int done_at_join = -1;
  g.async_join([&](error_code e) {
    EXPECT_FALSE(e);
    done_at_join = done;
  });
  ctx.restart();
  ctx.run();
  EXPECT_EQ(done_at_join, 2);
}

TEST(persistent_task_group, cancelling_a_join_stops_the_waiting_only)
{
  asio::io_context ctx;
  arc::persistent_task_group g(ctx);
  int done = 0;
  g.spawn(value_after(10ms, 1), [&](std::exception_ptr e, int) {
    EXPECT_FALSE(e);
    ++done;
  });
  asio::cancellation_signal sig;
  error_code ec;
  int calls = 0;
  g.async_join(asio::bind_cancellation_slot(sig.slot(), [&](error_code e) {
    ec = e;
    ++calls;
  }));
  asio::post(ctx, [&] { sig.emit(asio::cancellation_type::terminal); });
  run_until(ctx, [&] { return calls == 1; });
  EXPECT_EQ(ec, asio::error::operation_aborted);
  EXPECT_EQ(done, 0);
  ctx.run();
  EXPECT_EQ(done, 1);
  EXPECT_EQ(calls, 1);
}

TEST(persistent_task_group, join_through_use_awaitable)
{
  asio::io_context ctx;
  arc::persistent_task_group g(ctx);
  int done = 0;
  for (int i = 0; i != 3; ++i)
    g.spawn(value_after(std::chrono::milliseconds(i), i), [&](std::exception_ptr, int) { ++done; });
  int done_at_join = -1;
  arc_test::run_task(ctx, [&]() -> asio::awaitable<void> {
    co_await g.async_join(asio::use_awaitable);
    done_at_join = done;
  });
  EXPECT_EQ(done_at_join, 3);
}

// --- Observability ---------------------------------------------------------------------------

TEST(persistent_task_group, snapshot_lists_live_children_in_spawn_order_with_their_state)
{
  asio::io_context ctx;
  arc::persistent_task_group g(ctx, {.name = "conns"});
  EXPECT_EQ(g.name(), "conns");
  const auto line_a = __LINE__ + 1;
  auto a = g.spawn(sleeper(), arc::spawn_options{.name = "a"});
  const auto line_b = __LINE__ + 1;
  auto b = g.spawn(sleeper(), arc::spawn_options{.name = "b"});
  g.spawn(value_after(0ms, 0), arc::spawn_options{.name = "quick"});
  ctx.poll();
  while (g.size() > 2 && ctx.run_one_for(1s))
  {
  }
  const arc::cancel_reason R = arc::reason::user("just b");
  b.cancel(R);
  std::vector<arc::task_info> s = g.snapshot();
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].name, "a");
  EXPECT_EQ(s[0].where.line(), line_a);
  EXPECT_EQ(s[0].status, arc::task_status::running);
  EXPECT_FALSE(s[0].reason);
  EXPECT_EQ(s[1].name, "b");
  EXPECT_EQ(s[1].where.line(), line_b);
  EXPECT_EQ(s[1].status, arc::task_status::cancelling);
  EXPECT_EQ(s[1].reason, R);
  EXPECT_EQ(s[1].requests, 1u);
  EXPECT_LT(s[0].id, s[1].id);
  std::ostringstream line;
  line << s[1];
  EXPECT_NE(line.str().find("conns/b"), std::string::npos) << line.str();
  EXPECT_NE(line.str().find("cancelling"), std::string::npos) << line.str();
  EXPECT_NE(line.str().find("just b"), std::string::npos) << line.str();
  g.cancel(arc::reason::shutdown());
  ctx.run();
  EXPECT_TRUE(g.snapshot().empty());
}

// --- this_task ---------------------------------------------------------------------------------

TEST(persistent_task_group, a_child_finds_its_group_and_name_and_spawns_a_sibling)
{
  asio::io_context ctx;
  arc::persistent_task_group g(ctx, {.name = "family"});
  std::string name, sibling_name, group_name;
  bool outside_group = true;
  g.spawn(
      [&]() -> asio::awaitable<void>
      {
        name = std::string(arc::this_task::name());
        arc::group_ref mine = arc::this_task::group();
        EXPECT_TRUE(mine);
        group_name = mine.name();
        mine.spawn(
            [&]() -> asio::awaitable<void>
            {
              sibling_name = std::string(arc::this_task::name());
              co_return;
            },
            arc::spawn_options{.name = "younger"});
        co_return;
      },
      arc::spawn_options{.name = "elder"});
  arc::co_spawn(ctx,
      [&]() -> asio::awaitable<void>
      {
        outside_group = static_cast<bool>(arc::this_task::group()) || !arc::this_task::name().empty();
        co_return;
      },
      asio::detached);
  ctx.run();
  EXPECT_EQ(name, "elder");
  EXPECT_EQ(sibling_name, "younger");
  EXPECT_EQ(group_name, "family");
  EXPECT_FALSE(outside_group);
  EXPECT_FALSE(arc::this_task::group());
}

// --- Lifetime -----------------------------------------------------------------------------------

TEST(persistent_task_group, destroying_the_group_cancels_its_children_with_a_shutdown_reason)
{
  asio::io_context ctx;
  arc::cancel_reason seen;
  int done = 0;
  {
    arc::persistent_task_group g(ctx);
    g.spawn(sleeper(&seen), [&](std::exception_ptr) { ++done; });
    ctx.poll();
  }
  ctx.run();
  EXPECT_EQ(done, 1);
  EXPECT_EQ(seen.kind(), arc::reason_kind::parent);
  EXPECT_EQ(seen.cause().kind(), arc::reason_kind::shutdown);
}

TEST(persistent_task_group, a_group_ref_outliving_the_group_finds_it_closed)
{
  asio::io_context ctx;
  arc::group_ref ref;
  {
    arc::persistent_task_group g(ctx);
    ref = g;
  }
  EXPECT_TRUE(ref.closed());
  EXPECT_THROW(ref.spawn(value_after(1ms, 1)), boost::system::system_error);
}

TEST(persistent_task_group, destroying_the_context_with_live_children_leaks_nothing)
{
  // LSan (the ASan job) checks the leak; the books are checked here.
  auto ctx = std::make_unique<asio::io_context>();
  arc::persistent_task_group g(*ctx);
  std::vector<arc::task_handle<void>> handles;
  for (int i = 0; i != 100; ++i)
    handles.push_back(g.spawn(sleeper()));
  ctx->poll();
  EXPECT_EQ(g.size(), 100u);
  ctx.reset();
  EXPECT_EQ(g.size(), 0u);
  EXPECT_FALSE(handles.front().done());
}

// --- Executors ------------------------------------------------------------------------------------

TEST(persistent_task_group, destroying_the_group_then_its_context_with_live_children_leaks_nothing)
{
  // The usual declaration order: the context first, so the group goes first.
  // The group's cancel queues an emit on each child, and the context is
  // destroyed before anything delivers it: the queue's references used to
  // keep each task alive (LSan and valgrind check that nothing is left).
  auto started = std::make_shared<bool>(false);
  std::weak_ptr<bool> frame_alive = started;
  {
    asio::io_context ctx;
    arc::persistent_task_group g(ctx);
    g.spawn([started]() -> asio::awaitable<void> {
      *started = true;
      co_await sleeper();
    }); // started
    ctx.run_for(2ms);
    g.spawn(sleeper()); // never started
    EXPECT_TRUE(*started);
    started.reset();
  }
  EXPECT_TRUE(frame_alive.expired()) << "the started child's frame was destroyed";
}

TEST(persistent_task_group, children_run_on_a_strand_executor)
{
  asio::io_context ctx;
  auto strand = asio::make_strand(ctx);
  arc::persistent_task_group g(strand);
  bool on_strand = false;
  g.spawn(
      [&]() -> asio::awaitable<void>
      {
        co_await value_after(1ms, 0);
        on_strand = strand.running_in_this_thread();
      });
  ctx.run();
  EXPECT_TRUE(on_strand);
}

TEST(persistent_task_group, a_child_runs_on_the_executor_its_spawn_options_name)
{
  asio::io_context ctx;
  arc::persistent_task_group g(ctx);
  auto strand = asio::make_strand(ctx);
  asio::thread_pool pool(1);
  bool on_strand = false, on_pool = false;
  std::atomic<int> done{0};
  g.spawn(
      [&]() -> asio::awaitable<void>
      {
        co_await value_after(1ms, 0);
        on_strand = strand.running_in_this_thread();
      },
      arc::spawn_options{.name = "stranded", .executor = strand},
      [&](std::exception_ptr e) {
        EXPECT_FALSE(e);
        ++done;
      });
  g.spawn(
      [&]() -> asio::awaitable<void>
      {
        co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
        on_pool = pool.get_executor().running_in_this_thread();
      },
      arc::spawn_options{.name = "pooled", .executor = pool.get_executor()});
  ctx.run();
  EXPECT_TRUE(arc_test::wait_until([&] { return g.size() == 0; }));
  pool.join();
  EXPECT_EQ(done.load(), 1);
  EXPECT_TRUE(on_strand);
  EXPECT_TRUE(on_pool);
}

TEST(persistent_task_group_concurrency, spawns_cancels_and_completions_race_on_a_thread_pool)
{
  asio::thread_pool pool(4);
  arc::persistent_task_group g(pool, {.name = "pool"});
  const std::size_t n = arc_test::stress(10'000);
  std::atomic<std::size_t> completions{0}, cancelled{0};
  std::vector<std::thread> spawners;
  for (int t = 0; t != 2; ++t)
    spawners.emplace_back(
        [&]
        {
          for (std::size_t i = 0; i != n / 2; ++i)
          {
            g.spawn(sleeper(), [&](std::exception_ptr e) {
              if (e)
                cancelled.fetch_add(1);
              completions.fetch_add(1);
            });
            if (i % 64 == 0)
              g.cancel(arc::reason::user("batch"));
          }
        });
  for (auto& t : spawners)
    t.join();
  g.cancel(arc::reason::shutdown("end"));
  EXPECT_TRUE(arc_test::wait_until([&] { return completions.load() == n / 2 * 2; }));
  EXPECT_EQ(cancelled.load(), completions.load());
  EXPECT_TRUE(arc_test::wait_until([&] { return g.size() == 0; }));
  pool.join();
}

// --- Shutdown (G2, G3) ----------------------------------------------------------------------

// Ignores the first cancellation and keeps going for @p ignore_for; records
// the task's history when a later request gets through.
asio::awaitable<void> stubborn(std::chrono::milliseconds ignore_for,
    std::vector<arc::cancel_reason>* history, bool ignore_escalation = false)
{
  try
  {
    co_await value_after(std::chrono::hours(1), 0);
  }
  catch (const boost::system::system_error&)
  {
  }
  co_await asio::this_coro::reset_cancellation_state();
  try
  {
    co_await value_after(ignore_for, 0);
  }
  catch (const boost::system::system_error&)
  {
    if (history)
      *history = arc::this_task::source().history();
    if (!ignore_escalation)
      throw;
  }
  if (ignore_escalation)
  {
    co_await asio::this_coro::reset_cancellation_state();
    co_await value_after(ignore_for, 0);
  }
}

TEST(persistent_task_group, shutdown_cancels_every_child_as_parent_of_the_reason_and_waits_for_the_last)
{
  asio::io_context ctx;
  arc::persistent_task_group g(ctx, {.name = "g2"});
  const arc::cancel_reason R = arc::reason::signal(15);
  arc::cancel_reason seen[3];
  int done = 0;
  for (int i = 0; i != 3; ++i)
    g.spawn(
        [&, i]() -> asio::awaitable<void>
        {
          try
          {
            co_await sleeper(&seen[i]);
          }
          catch (const boost::system::system_error&)
          {
          }
          // Cleanup that takes a while, after the cancellation.
          co_await asio::this_coro::reset_cancellation_state();
          co_await value_after(std::chrono::milliseconds(5 * i), 0);
          ++done;
        });
  int calls = 0;
  error_code ec = asio::error::fault;
  arc::shutdown_report report;
  int done_at_completion = -1;
  asio::post(ctx, [&] {
    g.async_shutdown(R, {.grace = 10s, .force_after = 20s}, [&](error_code e, arc::shutdown_report r) {
      ++calls;
      ec = e;
      report = std::move(r);
      done_at_completion = done;
    });
    // A spawn during the shutdown is refused, and never runs.
    auto destroyed = std::make_shared<bool>(false);
    bool ran = false;
    EXPECT_THROW(g.spawn(probed(frame_probe{destroyed}, &ran)), boost::system::system_error);
    EXPECT_TRUE(*destroyed);
    EXPECT_FALSE(ran);
  });
  ctx.run();
  ASSERT_EQ(calls, 1);
  EXPECT_FALSE(ec);
  EXPECT_EQ(done_at_completion, 3) << "completes when the last child ends";
  for (const auto& s : seen)
  {
    EXPECT_EQ(s.kind(), arc::reason_kind::parent);
    EXPECT_EQ(s.cause(), R);
    EXPECT_EQ(s.cause().signal_number(), 15);
  }
  EXPECT_TRUE(g.closed());
  EXPECT_EQ(report.reason, R);
  EXPECT_EQ(report.finished, 3u);
  EXPECT_TRUE(report.escalated.empty());
  EXPECT_TRUE(report.stragglers.empty());
  EXPECT_TRUE(report.complete());
}

TEST(persistent_task_group, after_the_grace_a_stubborn_child_is_cancelled_again_as_escalated_and_reported)
{
  asio::io_context ctx;
  arc::persistent_task_group g(ctx, {.name = "g3"});
  const arc::cancel_reason R = arc::reason::shutdown("deploy");
  std::vector<arc::cancel_reason> history;
  const auto line = __LINE__ + 1;
  g.spawn(stubborn(std::chrono::milliseconds(10'000), &history), arc::spawn_options{.name = "stubborn"});
  g.spawn(sleeper(), arc::spawn_options{.name = "obedient"});
  error_code ec = asio::error::fault;
  arc::shutdown_report report;
  asio::post(ctx, [&] {
    g.async_shutdown(R, {.grace = 50ms, .force_after = 10s}, [&](error_code e, arc::shutdown_report r) {
      ec = e;
      report = std::move(r);
    });
  });
  ctx.run();
  EXPECT_FALSE(ec) << ec.message();
  ASSERT_EQ(history.size(), 2u);
  EXPECT_EQ(history[0].kind(), arc::reason_kind::parent);
  EXPECT_EQ(history[1].kind(), arc::reason_kind::escalated);
  EXPECT_EQ(history[1].cause(), R);
  ASSERT_EQ(report.escalated.size(), 1u);
  EXPECT_EQ(report.escalated[0].name, "stubborn");
  EXPECT_EQ(report.escalated[0].where.line(), line);
  EXPECT_GE(report.escalated[0].age, 50ms);
  EXPECT_EQ(report.escalated[0].status, arc::task_status::done) << "it finished once escalated";
  EXPECT_EQ(report.finished, 2u);
  EXPECT_TRUE(report.complete());
}

TEST(persistent_task_group, a_child_that_ignores_even_the_escalation_is_a_straggler_after_force_after)
{
  asio::io_context ctx;
  arc::persistent_task_group g(ctx, {.name = "g"});
  g.spawn(stubborn(std::chrono::milliseconds(300), nullptr, true), arc::spawn_options{.name = "deaf"});
  g.spawn(sleeper(), arc::spawn_options{.name = "obedient"});
  error_code ec;
  arc::shutdown_report report;
  bool completed = false;
  asio::post(ctx, [&] {
    g.async_shutdown(arc::reason::shutdown("now"), {.grace = 20ms, .force_after = 60ms},
        [&](error_code e, arc::shutdown_report r) {
          ec = e;
          report = std::move(r);
          completed = true;
        });
  });
  run_until(ctx, [&] { return completed; });
  EXPECT_EQ(ec, arc::error::shutdown_incomplete);
  ASSERT_EQ(report.stragglers.size(), 1u);
  EXPECT_EQ(report.stragglers[0].name, "deaf");
  EXPECT_EQ(report.stragglers[0].status, arc::task_status::escalated);
  EXPECT_FALSE(report.complete());
  EXPECT_EQ(report.finished, 1u);
  std::ostringstream out;
  out << report;
  const std::string text = out.str();
  EXPECT_NE(text.find("straggler: g/deaf"), std::string::npos) << text;
  EXPECT_NE(text.find("INCOMPLETE"), std::string::npos) << text;
  EXPECT_NE(text.find("1 still running"), std::string::npos) << text;
  ctx.run(); // the straggler ends on its own
  EXPECT_EQ(g.size(), 0u);
}

TEST(persistent_task_group, a_child_that_fails_during_the_shutdown_is_listed_with_its_error)
{
  asio::io_context ctx;
  int reported = 0;
  arc::persistent_task_group g(ctx, {.on_error = [&](std::exception_ptr, const arc::task_info&) { ++reported; }});
  g.spawn(
      []() -> asio::awaitable<void>
      {
        try
        {
          co_await sleeper();
        }
        catch (const boost::system::system_error&)
        {
        }
        throw std::runtime_error("flush failed");
      },
      arc::spawn_options{.name = "writer"});
  arc::shutdown_report report;
  asio::post(ctx, [&] {
    g.async_shutdown(arc::reason::shutdown(), {}, [&](error_code e, arc::shutdown_report r) {
      EXPECT_FALSE(e);
      report = std::move(r);
    });
  });
  ctx.run();
  EXPECT_EQ(reported, 1);
  ASSERT_EQ(report.failed.size(), 1u);
  EXPECT_EQ(report.failed[0].info.name, "writer");
  EXPECT_EQ(report.failed[0].what, "flush failed");
  EXPECT_EQ(message_of(report.failed[0].error), "flush failed");
  EXPECT_EQ(report.finished, 1u);
}

TEST(persistent_task_group, cancelling_a_shutdown_stops_its_waiting_and_leaves_the_group_closed)
{
  asio::io_context ctx;
  arc::persistent_task_group g(ctx);
  g.spawn(stubborn(std::chrono::milliseconds(30), nullptr));
  asio::cancellation_signal sig;
  error_code ec;
  int calls = 0;
  asio::post(ctx, [&] {
    g.async_shutdown(arc::reason::shutdown(), {.grace = 10s, .force_after = 20s},
        asio::bind_cancellation_slot(sig.slot(), [&](error_code e, arc::shutdown_report) {
          ec = e;
          ++calls;
        }));
    asio::post(ctx, [&] { sig.emit(asio::cancellation_type::terminal); });
  });
  run_until(ctx, [&] { return calls == 1; });
  EXPECT_EQ(ec, asio::error::operation_aborted);
  EXPECT_TRUE(g.closed());
  EXPECT_EQ(g.size(), 1u);
  ctx.run();
  EXPECT_EQ(g.size(), 0u);
  EXPECT_EQ(calls, 1);
}

TEST(persistent_task_group, shutdown_of_an_empty_group_completes_posted_through_each_token_kind)
{
  asio::io_context ctx;
  arc::persistent_task_group g(ctx);
  int calls = 0;
  g.async_shutdown(arc::reason::shutdown(), {}, [&](error_code e, arc::shutdown_report r) {
    EXPECT_FALSE(e);
    EXPECT_EQ(r.finished, 0u);
    ++calls;
  });
  EXPECT_EQ(calls, 0);
  auto fut = g.async_shutdown(arc::reason::shutdown(), {}, asio::use_future);
  error_code by_awaitable = asio::error::fault;
  arc::co_spawn(ctx,
      [&]() -> asio::awaitable<void>
      {
        auto [e, r] = co_await g.async_shutdown(arc::reason::shutdown(), {}, asio::as_tuple(asio::use_awaitable));
        by_awaitable = e;
      },
      asio::detached);
  ctx.run();
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(fut.get().complete());
  EXPECT_FALSE(by_awaitable);
}

TEST(persistent_task_group_concurrency, shutdown_races_spawns_on_a_thread_pool)
{
  asio::thread_pool pool(4);
  arc::persistent_task_group g(pool, {.name = "race"});
  const std::size_t n = arc_test::stress(10'000);
  std::atomic<std::size_t> completions{0}, refused{0}, spawned{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> spawners;
  for (int t = 0; t != 2; ++t)
    spawners.emplace_back(
        [&]
        {
          while (!go.load())
            std::this_thread::yield();
          for (std::size_t i = 0; i != n / 2; ++i)
          {
            try
            {
              g.spawn(sleeper(), [&](std::exception_ptr) { completions.fetch_add(1); });
              spawned.fetch_add(1);
            }
            catch (const boost::system::system_error& e)
            {
              EXPECT_EQ(e.code(), arc::error::group_closed);
              refused.fetch_add(1);
            }
          }
        });
  std::atomic<int> shutdowns{0};
  error_code ec = asio::error::fault;
  go.store(true);
  std::this_thread::sleep_for(1ms);
  g.async_shutdown(arc::reason::shutdown("race"), {.grace = 10s, .force_after = 20s},
      [&](error_code e, arc::shutdown_report) {
        ec = e;
        shutdowns.fetch_add(1);
      });
  for (auto& t : spawners)
    t.join();
  EXPECT_TRUE(arc_test::wait_until([&] { return shutdowns.load() == 1; }));
  EXPECT_FALSE(ec);
  EXPECT_EQ(spawned.load() + refused.load(), n / 2 * 2);
  EXPECT_TRUE(arc_test::wait_until([&] { return completions.load() == spawned.load(); }));
  EXPECT_EQ(g.size(), 0u);
  pool.join();
  EXPECT_EQ(completions.load(), spawned.load()) << "each completion exactly once";
}

} // namespace
