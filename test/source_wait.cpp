// Tests for cancel_source::async_wait: waiting for a source without binding
// an operation (Go's ctx.Done()).
#include <arc/cancel_source.hpp>

#include <arc/co_spawn.hpp>
#include <arc/error.hpp>
#include <arc/reasoned.hpp>

#include "test_util.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
// On Boost 1.81 promise.hpp must come before use_promise.hpp.
#include <boost/asio/experimental/promise.hpp>
#include <boost/asio/experimental/use_promise.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <memory>
#include <thread>
#include <tuple>
#include <type_traits>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

static_assert(std::is_same_v<decltype(std::declval<arc::cancel_source&>().async_wait(
                                 asio::use_awaitable)),
                  asio::awaitable<arc::cancel_reason>>,
    "co_await src.async_wait(use_awaitable) yields the reason");
static_assert(std::is_same_v<decltype(std::declval<arc::cancel_source&>().async_wait(
                                 asio::use_future)),
                  std::future<arc::cancel_reason>>);
static_assert(std::is_same_v<decltype(std::declval<arc::cancel_source&>().async_wait(
                                 arc::use_awaitable)),
                  asio::awaitable<arc::cancel_reason>>,
    "arc::use_awaitable leaves a signature without an error_code alone");

TEST(source_wait, a_wait_completes_with_the_first_reason)
{
  asio::io_context ctx;
  arc::cancel_source src(ctx);
  const auto why = arc::reason::shutdown("first");
  int calls = 0;
  arc::cancel_reason seen;
  src.async_wait([&](arc::cancel_reason r) {
    ++calls;
    seen = r;
  });
  asio::post(ctx, [&] {
    src.cancel(why);
    EXPECT_EQ(calls, 0) << "called from inside cancel()";
    src.cancel(arc::reason::user("second"));
  });
  ctx.run();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(seen, why);
}

TEST(source_wait, a_wait_on_a_cancelled_source_completes_posted_with_its_first_reason)
{
  asio::io_context ctx;
  arc::cancel_source src(ctx);
  const auto why = arc::reason::user("before");
  src.cancel(why);
  src.cancel(arc::reason::user("again"));
  int calls = 0;
  arc::cancel_reason seen;
  src.async_wait([&](arc::cancel_reason r) {
    ++calls;
    seen = r;
  });
  EXPECT_EQ(calls, 0) << "called from inside the initiating function";
  ctx.run();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(seen, why);
}

TEST(source_wait, a_wait_that_is_itself_cancelled_completes_with_an_empty_reason_and_leaves_the_source)
{
  asio::io_context ctx;
  arc::cancel_source src(ctx);
  asio::cancellation_signal sig;
  int calls = 0;
  arc::cancel_reason seen = arc::reason::user("not overwritten");
  src.async_wait(asio::bind_cancellation_slot(sig.slot(), [&](arc::cancel_reason r) {
    ++calls;
    seen = r;
  }));
  asio::post(ctx, [&] { sig.emit(asio::cancellation_type::terminal); });
  ctx.run();
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(seen);
  EXPECT_FALSE(src.cancelled());
  EXPECT_FALSE(sig.slot().has_handler()) << "the wait's canceller was left in the slot";
  // A cancel afterwards reaches nothing.
  src.cancel(arc::reason::user("late"));
  ctx.restart();
  ctx.run();
  EXPECT_EQ(calls, 1);
}

TEST(source_wait, a_cancel_from_a_foreign_thread_completes_on_the_handlers_executor)
{
  asio::io_context ctx;
  arc::cancel_source src(ctx);
  auto strand = asio::make_strand(ctx);
  std::atomic<int> calls{0};
  bool on_strand = false;
  src.async_wait(asio::bind_executor(strand, [&](arc::cancel_reason r) {
    on_strand = strand.running_in_this_thread() && r;
    ++calls;
  }));
  std::thread t([&] { src.cancel(arc::reason::user("from afar")); });
  arc_test::run_until(ctx, [&] { return calls.load() > 0; });
  t.join();
  EXPECT_EQ(calls.load(), 1);
  EXPECT_TRUE(on_strand);
}

TEST(source_wait, without_any_executor_the_wait_throws_no_executor)
{
  arc::cancel_source src; // no executor
  try
  {
    src.async_wait([](arc::cancel_reason) {});
    FAIL() << "async_wait should throw";
  }
  catch (const boost::system::system_error& e)
  {
    EXPECT_EQ(e.code(), arc::error::no_executor);
  }
  // With the handler's own executor it works.
  asio::io_context ctx;
  int calls = 0;
  src.async_wait(asio::bind_executor(ctx, [&](arc::cancel_reason) { ++calls; }));
  src.cancel();
  ctx.run();
  EXPECT_EQ(calls, 1);
}

TEST(source_wait, a_wait_on_a_moved_from_source_completes_at_once_with_an_empty_reason)
{
  asio::io_context ctx;
  arc::cancel_source a(ctx);
  arc::cancel_source b(std::move(a));
  int calls = 0;
  arc::cancel_reason seen = arc::reason::user("not overwritten");
  a.async_wait(asio::bind_executor(ctx, [&](arc::cancel_reason r) {
    ++calls;
    seen = r;
  }));
  EXPECT_EQ(calls, 0);
  ctx.run();
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(seen);
}

TEST(source_wait, destroying_the_context_destroys_a_pending_handler_without_calling_it)
{
  auto token = std::make_shared<int>(0);
  std::weak_ptr<int> alive = token;
  int calls = 0;
  arc::cancel_source src;
  {
    asio::io_context ctx;
    src = arc::cancel_source(ctx);
    src.async_wait([&calls, token = std::move(token)](arc::cancel_reason) { ++calls; });
    ctx.run_for(5ms); // pending: the wait holds work, so run() would not return
    EXPECT_FALSE(alive.expired());
  }
  EXPECT_TRUE(alive.expired()) << "the handler outlived its io_context";
  EXPECT_EQ(calls, 0);
  // The source outlives the context: cancelling it reaches nothing.
  src.cancel(arc::reason::user("after the context"));
  EXPECT_EQ(calls, 0);
}

TEST(source_wait, dropping_every_handle_leaves_the_wait_pending)
{
  asio::io_context ctx;
  int calls = 0;
  {
    arc::cancel_source src(ctx);
    src.async_wait([&](arc::cancel_reason) { ++calls; });
  }
  ctx.run_for(5ms);
  EXPECT_EQ(calls, 0);
  EXPECT_FALSE(ctx.stopped()) << "the pending wait holds work, as a pending Asio operation does";
}

TEST(source_wait, a_deferred_wait_started_after_the_handle_is_gone_still_waits_on_the_source)
{
  asio::io_context ctx;
  arc::cancel_source keeper(ctx);
  int calls = 0;
  arc::cancel_reason seen;
  auto op = [&] {
    arc::cancel_source src = keeper;
    return src.async_wait(asio::deferred);
  }();
  std::move(op)([&](arc::cancel_reason r) {
    ++calls;
    seen = r;
  });
  const auto why = arc::reason::user("deferred");
  asio::post(ctx, [&] { keeper.cancel(why); });
  ctx.run();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(seen, why);
}

TEST(source_wait, use_future_gets_the_reason)
{
  asio::io_context ctx;
  arc::cancel_source src(ctx);
  std::future<arc::cancel_reason> fut = src.async_wait(asio::use_future);
  const auto why = arc::reason::signal(2);
  asio::post(ctx, [&] { src.cancel(why); });
  ctx.run();
  EXPECT_EQ(fut.get(), why);
}

// Regression: the wait's memory was given back through the allocator of the
// handler it had moved out, and experimental::promise's handler dereferences
// its moved-from state to answer (UBSan saw it through cancel_and_wait).
TEST(source_wait, use_promise_gets_the_reason)
{
  asio::io_context ctx;
  arc::cancel_source src(ctx);
  auto p = src.async_wait(asio::experimental::use_promise);
  const auto why = arc::reason::signal(15);
  asio::post(ctx, [&] { src.cancel(why); });
  arc_test::run_until(ctx, [&] { return p.completed(); });
  arc::cancel_reason got;
  p([&](arc::cancel_reason r) { got = std::move(r); });
  ctx.restart();
  ctx.run();
  EXPECT_EQ(got, why);
}

TEST(source_wait, a_coroutine_awaits_the_reason)
{
  asio::io_context ctx;
  arc::cancel_source src(ctx);
  const auto why = arc::reason::shutdown("await");
  arc::cancel_reason seen;
  std::tuple<arc::cancel_reason> as_tuple;
  arc_test::run_task(ctx, [&]() -> asio::awaitable<void> {
    asio::post(ctx, [&] { src.cancel(why); });
    seen = co_await src.async_wait(asio::use_awaitable);
    as_tuple = co_await src.async_wait(asio::as_tuple(arc::use_awaitable));
  }());
  EXPECT_EQ(seen, why);
  EXPECT_EQ(std::get<0>(as_tuple), why);
}

TEST(source_wait, cancelling_the_awaiting_task_ends_the_wait_with_an_empty_reason)
{
  asio::io_context ctx;
  arc::cancel_source watched(ctx);
  arc::cancel_source task_src;
  arc::cancel_reason seen = arc::reason::user("not overwritten");
  int completions = 0;
  arc::co_spawn(ctx, [&]() -> asio::awaitable<void> {
    task_src = arc::this_task::source();
    seen = co_await watched.async_wait(asio::use_awaitable);
  }, [&](std::exception_ptr) { ++completions; });
  asio::post(ctx, [&] { asio::post(ctx, [&] { task_src.cancel(arc::reason::user("stop")); }); });
  arc_test::run_until(ctx, [&] { return completions > 0; });
  EXPECT_FALSE(seen);
  EXPECT_FALSE(watched.cancelled());
}

TEST(source_wait, the_handlers_allocator_is_used)
{
  asio::io_context ctx;
  arc::cancel_source src(ctx);
  arc_test::alloc_count count;
  int calls = 0;
  src.async_wait(asio::bind_allocator(arc_test::counting_allocator<int>(&count),
      [&](arc::cancel_reason) { ++calls; }));
  EXPECT_GE(count.allocations, 1);
  EXPECT_EQ(count.live, 1);
  src.cancel();
  ctx.run();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(count.live, 0) << "the wait's memory was not given back";
}

TEST(source_wait, a_handler_may_wait_again_and_cancel_the_source_again)
{
  asio::io_context ctx;
  arc::cancel_source src(ctx);
  const auto why = arc::reason::user("once");
  std::vector<arc::cancel_reason> seen;
  src.async_wait([&](arc::cancel_reason r) {
    seen.push_back(r);
    src.cancel(arc::reason::user("from the handler"));
    src.async_wait([&](arc::cancel_reason r2) { seen.push_back(r2); });
  });
  asio::post(ctx, [&] { src.cancel(why); });
  ctx.run();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0], why);
  EXPECT_EQ(seen[1], why);
}

TEST(source_wait_concurrency, a_cancel_racing_the_waits_own_cancellation_completes_each_wait_once)
{
  constexpr int rounds = 200;
  constexpr int waits = 16;
  for (int round = 0; round < rounds; ++round)
  {
    asio::io_context ctx;
    arc::cancel_source src(ctx);
    std::vector<asio::cancellation_signal> sigs(waits);
    std::vector<int> calls(waits, 0);
    int cancelled_by_source = 0;
    for (int i = 0; i < waits; ++i)
      src.async_wait(asio::bind_cancellation_slot(sigs[i].slot(), [&, i](arc::cancel_reason r) {
        ++calls[i];
        cancelled_by_source += static_cast<bool>(r);
      }));
    std::thread t([&] { src.cancel(arc::reason::user("race")); });
    asio::post(ctx, [&] {
      for (auto& s : sigs)
        s.emit(asio::cancellation_type::terminal);
    });
    ctx.run();
    t.join();
    for (int i = 0; i < waits; ++i)
      ASSERT_EQ(calls[i], 1) << "round " << round << ", wait " << i;
    EXPECT_LE(cancelled_by_source, waits);
  }
}

// Asio's awaitable operators call co_spawn unqualified. With an awaitable of
// arc's cancel_reason, argument-dependent lookup used to find arc::co_spawn
// as well, and the call was ambiguous: it did not compile.
TEST(source_wait, a_wait_races_a_timer_through_the_awaitable_operators)
{
  using namespace boost::asio::experimental::awaitable_operators;
  asio::io_context ctx;
  arc::cancel_source src(ctx);
  const arc::cancel_reason R = arc::reason::user("stop");
  std::size_t winner = 99;
  arc::cancel_reason got;
  arc_test::run_task(ctx,
      [&]() -> asio::awaitable<void>
      {
        asio::steady_timer t(ctx, std::chrono::hours(1));
        asio::post(ctx, [&] { src.cancel(R); });
        auto which = co_await (src.async_wait(asio::use_awaitable) || t.async_wait(asio::use_awaitable));
        winner = which.index();
        if (which.index() == 0)
          got = std::get<0>(which);
      });
  EXPECT_EQ(winner, 0u);
  EXPECT_EQ(got, R);
}

} // namespace
