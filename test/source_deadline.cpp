// Tests for cancel_source::cancel_after / cancel_at: a deadline on a source
// (Go's context.WithTimeout).
#include <arc/cancel_source.hpp>

#include <arc/bind_cancel.hpp>
#include <arc/co_spawn.hpp>
#include <arc/error.hpp>

#include "test_util.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using boost::system::error_code;

namespace {

TEST(source_deadline, a_deadline_cancels_the_source_with_a_timeout)
{
  asio::io_context ctx;
  arc::cancel_source src(ctx);
  const auto before = std::chrono::steady_clock::now();
  const auto line = __LINE__ + 1;
  EXPECT_TRUE(src.cancel_after(10ms));
  EXPECT_FALSE(src.cancelled());
  ctx.run(); // returns once the deadline has fired: nothing else is pending
  ASSERT_TRUE(src.cancelled());
  const arc::cancel_reason r = src.reason();
  EXPECT_EQ(r.kind(), arc::reason_kind::timeout);
  EXPECT_EQ(r.code(), arc::error::timed_out);
  EXPECT_EQ(r.where().line(), line);
  EXPECT_GE(r.deadline(), before + 10ms);
  EXPECT_GE(std::chrono::steady_clock::now(), before + 10ms);
  EXPECT_EQ(src.requests(), 1u);
}

TEST(source_deadline, a_deadline_may_carry_its_own_reason)
{
  asio::io_context ctx;
  arc::cancel_source src(ctx);
  const auto why = arc::reason::shutdown("grace period over");
  EXPECT_TRUE(src.cancel_after(1ms, why));
  ctx.run();
  EXPECT_EQ(src.reason(), why);
}

TEST(source_deadline, cancel_at_takes_a_time_point)
{
  asio::io_context ctx;
  arc::cancel_source src(ctx);
  const auto due = std::chrono::steady_clock::now() + 5ms;
  EXPECT_TRUE(src.cancel_at(due));
  ctx.run();
  EXPECT_EQ(src.reason().kind(), arc::reason_kind::timeout);
  EXPECT_EQ(src.reason().deadline(), due);
}

TEST(source_deadline, a_bound_operation_is_cancelled_by_the_deadline_with_its_reason)
{
  asio::io_context ctx;
  arc::cancel_source src(ctx);
  asio::steady_timer timer(ctx, 1h);
  error_code ec;
  arc::cancel_reason seen;
  timer.async_wait(arc::with_reason(src, [&](error_code e, arc::cancel_reason r) {
    ec = e;
    seen = r;
  }));
  src.cancel_after(5ms);
  arc_test::run_until(ctx, [&] { return static_cast<bool>(seen); });
  EXPECT_EQ(ec, asio::error::operation_aborted);
  EXPECT_EQ(seen.kind(), arc::reason_kind::timeout);
}

TEST(source_deadline, a_source_cancelled_first_drops_its_timer_at_once)
{
  asio::io_context ctx;
  arc::cancel_source src(ctx);
  const auto why = arc::reason::user("first");
  EXPECT_TRUE(src.cancel_after(1h));
  src.cancel(why);
  const auto start = std::chrono::steady_clock::now();
  ctx.run(); // would block for an hour if the timer were still pending
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  EXPECT_EQ(src.reason(), why);
  EXPECT_EQ(src.requests(), 1u) << "the dropped deadline must not count as a request";
}

TEST(source_deadline, destroying_the_last_handle_drops_the_timer_and_never_cancels)
{
  asio::io_context ctx;
  {
    arc::cancel_source src(ctx);
    EXPECT_TRUE(src.cancel_after(1h));
  }
  const auto start = std::chrono::steady_clock::now();
  ctx.run();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
}

TEST(source_deadline, the_deadline_does_not_keep_the_source_alive_for_a_bound_operation_either)
{
  asio::io_context ctx;
  asio::steady_timer timer(ctx, 20ms);
  error_code ec = asio::error::would_block;
  {
    arc::cancel_source src(ctx);
    src.cancel_after(1h);
    timer.async_wait(arc::bind_cancel(src, [&](error_code e) { ec = e; }));
  }
  // The operation still holds the state; the deadline is still armed, and
  // the wait completes normally first. Then the state goes, and the timer.
  const auto start = std::chrono::steady_clock::now();
  ctx.run();
  EXPECT_FALSE(ec);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
}

TEST(source_deadline, the_earliest_of_two_deadlines_wins_and_the_other_is_dropped)
{
  asio::io_context ctx;
  arc::cancel_source src(ctx);
  const auto early = arc::reason::user("early");
  EXPECT_TRUE(src.cancel_after(1h, arc::reason::user("late")));
  EXPECT_TRUE(src.cancel_after(5ms, early));
  const auto start = std::chrono::steady_clock::now();
  ctx.run();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  EXPECT_EQ(src.reason(), early);
  EXPECT_EQ(src.requests(), 1u);
}

// A task keeps its executor with its type, not as an any_io_executor: its
// source still hands one out, for a deadline on the task and for its
// children, on an io_context and on a strand.
template <typename Executor>
void task_deadline_on(asio::io_context& ctx, const Executor& ex)
{
  std::exception_ptr result;
  bool done = false;
  arc::cancel_reason seen;
  bool child_has_executor = false;
  arc::co_spawn(ex,
      [&]() -> asio::awaitable<void>
      {
        arc::cancel_source self = arc::this_task::source();
        child_has_executor = self.make_child().has_executor();
        EXPECT_TRUE(self.cancel_after(10ms));
        asio::steady_timer t(co_await asio::this_coro::executor, 10s);
        try
        {
          co_await t.async_wait(asio::use_awaitable);
        }
        catch (const boost::system::system_error&)
        {
          seen = arc::this_task::reason();
          throw;
        }
      },
      [&](std::exception_ptr e)
      {
        result = e;
        done = true;
      });
  ctx.run();
  ASSERT_TRUE(done);
  EXPECT_TRUE(child_has_executor);
  EXPECT_EQ(seen.kind(), arc::reason_kind::timeout);
  ASSERT_TRUE(result);
  try
  {
    std::rethrow_exception(result);
  }
  catch (const arc::cancelled_error& e)
  {
    EXPECT_EQ(e.code(), arc::error::timed_out);
    EXPECT_EQ(e.reason(), seen);
  }
}

TEST(source_deadline, a_deadline_on_a_task_own_source_cancels_the_task_with_a_timeout)
{
  asio::io_context ctx;
  task_deadline_on(ctx, ctx.get_executor());
}

TEST(source_deadline, a_deadline_on_a_task_on_a_strand_cancels_the_task_with_a_timeout)
{
  asio::io_context ctx;
  task_deadline_on(ctx, asio::make_strand(ctx));
}

TEST(source_deadline, bad_input_arms_nothing)
{
  asio::io_context ctx;
  arc::cancel_source cancelled(ctx);
  cancelled.cancel();
  EXPECT_FALSE(cancelled.cancel_after(1ms)) << "already cancelled";

  arc::cancel_source moved(ctx);
  arc::cancel_source keeper(std::move(moved));
  EXPECT_FALSE(moved.cancel_after(1ms)) << "moved-from";

  arc::cancel_source no_executor;
  try
  {
    no_executor.cancel_after(1ms);
    FAIL() << "cancel_after without an executor should throw";
  }
  catch (const boost::system::system_error& e)
  {
    EXPECT_EQ(e.code(), arc::error::no_executor);
  }
  ctx.run(); // nothing pending
  EXPECT_FALSE(keeper.cancelled());
}

TEST(source_deadline, the_context_may_be_destroyed_with_a_deadline_pending)
{
  arc::cancel_source src;
  {
    asio::io_context ctx;
    src = arc::cancel_source(ctx);
    EXPECT_TRUE(src.cancel_after(1h));
    ctx.run_for(1ms);
  }
  // The timer went with its context; the source still works.
  EXPECT_TRUE(src.cancel(arc::reason::user("after")));
}

TEST(source_deadline_concurrency, a_cancel_racing_the_expiry_records_one_first_reason)
{
  for (int round = 0; round < 200; ++round)
  {
    asio::io_context ctx;
    auto work = asio::make_work_guard(ctx);
    std::thread runner([&] { ctx.run(); });
    arc::cancel_source src(ctx);
    const auto mine = arc::reason::user("mine");
    src.cancel_after(0ms);
    const bool first = src.cancel(mine);
    work.reset();
    runner.join();
    ASSERT_TRUE(src.cancelled());
    if (first)
      EXPECT_EQ(src.reason(), mine);
    else
      EXPECT_EQ(src.reason().kind(), arc::reason_kind::timeout);
  }
}

TEST(source_deadline_concurrency, deadlines_armed_from_a_foreign_thread_fire_on_the_executor)
{
  asio::io_context ctx;
  auto work = asio::make_work_guard(ctx);
  std::thread runner([&] { ctx.run(); });
  std::vector<arc::cancel_source> sources;
  for (int i = 0; i < 50; ++i)
  {
    sources.emplace_back(ctx);
    sources.back().cancel_after(std::chrono::milliseconds(i % 5));
  }
  EXPECT_TRUE(arc_test::wait_until([&] {
    for (auto& s : sources)
      if (!s.cancelled())
        return false;
    return true;
  }));
  work.reset();
  runner.join();
}

} // namespace
