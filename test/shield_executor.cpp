// Tests for arc::make_shield_executor: what it tracks, a context's shutdown
// waiting for it, tasks spawned on it that nothing outside cancels, its
// deadline, Asio's executor requirements, and its misuse.
#include <arc/shield.hpp>

#include <arc/bind_cancel.hpp>
#include <arc/persistent_task_group.hpp>
#include <arc/registry.hpp>

#include "shutdown_util.hpp"
#include "test_util.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/defer.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using boost::system::error_code;
using arc_test::run_until;
using arc_test::shut_down;

namespace {

using io_shield_executor = arc::shield_executor<asio::io_context::executor_type>;

static_assert(asio::execution::is_executor<io_shield_executor>::value);
static_assert(std::is_constructible_v<asio::any_io_executor, io_shield_executor>);
static_assert(std::is_nothrow_copy_constructible_v<io_shield_executor>);

asio::awaitable<void> sleep_then_set(std::chrono::steady_clock::duration d, bool* done)
{
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(asio::use_awaitable);
  *done = true;
}

} // namespace

TEST(shield_executor, a_posted_function_is_pending_until_it_has_run)
{
  asio::io_context ctx;
  auto ex = arc::make_shield_executor(ctx.get_executor(), {.name = "audit"});
  EXPECT_TRUE(arc::shields(ctx).empty()) << "an executor with nothing pending is not listed";
  int ran = 0;
  for (int i = 0; i != 3; ++i)
    asio::post(ex, [&] { ++ran; });
  const std::vector<arc::shield_info> listed = arc::shields(ctx);
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_TRUE(listed[0].executor);
  EXPECT_EQ(listed[0].name, "audit");
  EXPECT_EQ(listed[0].pending, 3u);
  EXPECT_EQ(listed[0].status, arc::shield_status::running);
  std::ostringstream line;
  line << listed[0];
  EXPECT_NE(line.str().find("shield executor audit"), std::string::npos) << line.str();
  EXPECT_NE(line.str().find("3 pending"), std::string::npos) << line.str();
  ctx.run();
  EXPECT_EQ(ran, 3);
  EXPECT_EQ(ex.info().pending, 0u);
  EXPECT_EQ(ex.info().status, arc::shield_status::done);
  EXPECT_TRUE(arc::shields(ctx).empty());
}

TEST(shield_executor, dispatch_and_defer_are_counted_too)
{
  asio::io_context ctx;
  auto ex = arc::make_shield_executor(ctx.get_executor());
  std::size_t pending_inside = 0;
  bool inline_dispatch = false;
  asio::post(ex, [&] {
    bool returned = false;
    asio::dispatch(ex, [&] {
      inline_dispatch = !returned;
      pending_inside = ex.info().pending;
    });
    returned = true;
    asio::defer(ex, [] {});
  });
  ctx.run();
  EXPECT_TRUE(inline_dispatch) << "dispatch from inside its context runs at once, as on the wrapped executor";
  EXPECT_EQ(pending_inside, 2u) << "the posted function and the dispatched one";
  EXPECT_EQ(ex.info().pending, 0u);
}

TEST(shield_executor, an_operation_whose_handler_runs_on_it_is_pending_while_it_waits)
{
  asio::io_context ctx;
  auto ex = arc::make_shield_executor(ctx.get_executor(), {.name = "flush"});
  asio::steady_timer timer(ctx, 40ms);
  bool fired = false;
  timer.async_wait(asio::bind_executor(ex, [&](error_code) { fired = true; }));
  EXPECT_EQ(ex.info().pending, 1u) << "the timer's operation holds a tracked copy of it";
  auto [ec, report] = shut_down(ctx, {.grace = 1s, .force_after = 10s});
  EXPECT_TRUE(fired) << "the context's shutdown waited for the handler";
  EXPECT_FALSE(ec);
  ASSERT_EQ(report.shields.size(), 1u);
  EXPECT_TRUE(report.shields[0].executor);
  EXPECT_EQ(report.shields[0].name, "flush");
  EXPECT_EQ(report.shields[0].status, arc::shield_status::done);
  EXPECT_TRUE(report.complete());
}

TEST(shield_executor, a_shutdown_gives_up_at_force_after_and_reports_it_still_running)
{
  asio::io_context ctx;
  auto ex = arc::make_shield_executor(ctx.get_executor(), {.name = "stuck"});
  asio::steady_timer timer(ctx, 1h);
  error_code wait_ec;
  timer.async_wait(asio::bind_executor(ex, [&](error_code e) { wait_ec = e; }));
  auto [ec, report] = shut_down(ctx, {.grace = 10ms, .force_after = 30ms});
  EXPECT_EQ(ec, arc::error::shutdown_incomplete);
  ASSERT_EQ(report.shields.size(), 1u);
  EXPECT_EQ(report.shields[0].status, arc::shield_status::running);
  EXPECT_EQ(report.shields[0].pending, 1u);
  EXPECT_FALSE(report.complete());
  timer.cancel();
  ctx.run();
  EXPECT_EQ(wait_ec, asio::error::operation_aborted);
  EXPECT_EQ(ex.info().pending, 0u);
}

TEST(shield_executor, a_task_spawned_on_it_is_not_cancelled_through_its_token_slot)
{
  asio::io_context ctx;
  auto ex = arc::make_shield_executor(ctx.get_executor());
  asio::cancellation_signal sig;
  bool finished = false, completed = false;
  std::exception_ptr error;
  arc::co_spawn(ex, sleep_then_set(30ms, &finished),
      asio::bind_cancellation_slot(sig.slot(), [&](std::exception_ptr e) {
        error = e;
        completed = true;
      }));
  asio::post(ctx, [&] { sig.emit(asio::cancellation_type::terminal); });
  EXPECT_GE(ex.info().pending, 1u) << "the task's coroutine holds it";
  run_until(ctx, [&] { return completed; });
  EXPECT_TRUE(finished);
  EXPECT_FALSE(error);
  ctx.run();
  EXPECT_EQ(ex.info().pending, 0u);
}

TEST(shield_executor, a_task_spawned_on_it_is_not_a_child_of_a_bind_cancel_source)
{
  asio::io_context ctx;
  auto ex = arc::make_shield_executor(ctx.get_executor());
  arc::cancel_source src(ctx);
  bool finished = false, completed = false;
  std::exception_ptr error;
  arc::co_spawn(ex, sleep_then_set(30ms, &finished),
      arc::bind_cancel(src, [&](std::exception_ptr e) {
        error = e;
        completed = true;
      }));
  asio::post(ctx, [&] { src.cancel(arc::reason::user("go away")); });
  run_until(ctx, [&] { return completed; });
  EXPECT_TRUE(finished);
  EXPECT_FALSE(error);
}

TEST(shield_executor, a_group_shutdown_waits_for_a_task_on_it_that_a_child_awaits)
{
  asio::io_context ctx;
  arc::persistent_task_group g(ctx, {.name = "orders"});
  auto ex = arc::make_shield_executor(ctx.get_executor(), {.name = "commits"});
  bool committed = false, child_resumed = false;
  g.spawn([&, ex]() -> asio::awaitable<void> {
    co_await arc::co_spawn(ex, sleep_then_set(40ms, &committed), asio::use_awaitable);
    child_resumed = true;
  });
  bool done = false, committed_first = false;
  error_code ec;
  asio::steady_timer later(ctx, 5ms);
  later.async_wait([&](error_code) {
    g.async_shutdown(arc::reason::shutdown("stop"), {.grace = 1s},
        [&](error_code e, arc::shutdown_report) {
          ec = e;
          committed_first = committed;
          done = true;
        });
  });
  run_until(ctx, [&] { return done; });
  EXPECT_FALSE(ec);
  EXPECT_TRUE(committed_first) << "the group's shutdown ended after the commit";
  EXPECT_TRUE(child_resumed) << "the child got the commit's result, then ended";
}

TEST(shield_executor, a_group_child_spawned_on_it_is_tracked_but_stays_its_groups)
{
  asio::io_context ctx;
  arc::persistent_task_group g(ctx, {.name = "children"});
  auto ex = arc::make_shield_executor(ctx.get_executor(), {.name = "child executor"});
  asio::steady_timer never(ctx, 1h);
  auto h = g.spawn(
      [&]() -> asio::awaitable<void> { co_await never.async_wait(asio::use_awaitable); },
      {.executor = asio::any_io_executor(ex)});
  ctx.poll();
  EXPECT_GE(ex.info().pending, 1u) << "the child's coroutine holds a tracked copy";
  g.cancel(arc::reason::user("still the group's"));
  run_until(ctx, [&] { return h.done(); });
  EXPECT_TRUE(h.ended_cancelled()) << "documented: a child stays its group's";
  ctx.run();
  EXPECT_EQ(ex.info().pending, 0u);
}

TEST(shield_executor, its_deadline_forces_a_task_spawned_on_it)
{
  asio::io_context ctx;
  auto ex = arc::make_shield_executor(ctx.get_executor(), {.deadline = 20ms, .name = "bounded"});
  bool finished = false, completed = false;
  std::exception_ptr error;
  arc::co_spawn(ex, sleep_then_set(1h, &finished), [&](std::exception_ptr e) {
    error = e;
    completed = true;
  });
  run_until(ctx, [&] { return completed; });
  EXPECT_FALSE(finished);
  ASSERT_TRUE(error);
  try
  {
    std::rethrow_exception(error);
  }
  catch (const arc::cancelled_error& e)
  {
    EXPECT_EQ(e.reason().kind(), arc::reason_kind::shield_deadline);
    EXPECT_EQ(e.code(), arc::error::shield_deadline_exceeded);
  }
}

TEST(shield_executor, any_io_executor_holds_it_and_its_work_is_still_tracked)
{
  asio::io_context ctx;
  auto shielded = arc::make_shield_executor(ctx.get_executor(), {.name = "erased"});
  asio::any_io_executor ex = shielded;
  EXPECT_EQ(&asio::query(ex, asio::execution::context), &static_cast<asio::execution_context&>(ctx));
  bool ran = false;
  asio::post(ex, [&] { ran = true; });
  EXPECT_EQ(shielded.info().pending, 1u);
  asio::steady_timer timer(ex, 20ms);
  bool fired = false;
  timer.async_wait([&](error_code) { fired = true; });
  auto [ec, report] = shut_down(ctx, {.grace = 1s, .force_after = 10s});
  EXPECT_TRUE(ran);
  EXPECT_TRUE(fired) << "the timer's handler runs on the shield executor: the shutdown waited";
  EXPECT_FALSE(ec);
  ASSERT_EQ(report.shields.size(), 1u);
  EXPECT_EQ(report.shields[0].name, "erased");
}

TEST(shield_executor, it_wraps_a_strand_and_keeps_its_order)
{
  asio::io_context ctx;
  auto ex = arc::make_shield_executor(asio::make_strand(ctx));
  std::vector<int> order;
  for (int i = 0; i != 5; ++i)
    asio::post(ex, [&, i] { order.push_back(i); });
  EXPECT_EQ(ex.info().pending, 5u);
  ctx.run();
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
  EXPECT_EQ(ex.info().pending, 0u);
}

TEST(shield_executor, copies_share_one_shield_and_compare_equal)
{
  asio::io_context ctx;
  auto a = arc::make_shield_executor(ctx.get_executor());
  auto b = a;
  auto c = arc::make_shield_executor(ctx.get_executor());
  EXPECT_EQ(a, b);
  EXPECT_FALSE(a == c) << "two make_shield_executor calls are two shields";
  asio::post(a, [] {});
  asio::post(b, [] {});
  EXPECT_EQ(a.info().pending, 2u);
  EXPECT_EQ(c.info().pending, 0u);
  EXPECT_EQ(arc::shields(ctx).size(), 1u);
  ctx.run();
}

TEST(shield_executor, functions_destroyed_unrun_with_their_context_are_reported_once_and_no_longer_pending)
{
  std::optional<io_shield_executor> kept;
  auto witness = std::make_shared<int>(0);
  std::vector<arc::task_info> abandoned;
  {
    asio::io_context ctx;
    asio::use_service<arc::registry>(ctx).on_abandoned(
        [&](const arc::task_info& t) { abandoned.push_back(t); });
    kept = arc::make_shield_executor(ctx.get_executor(), {.name = "flush"});
    asio::post(*kept, [witness] {});
    asio::post(*kept, [witness] {});
    EXPECT_EQ(kept->info().pending, 2u);
  }
  EXPECT_EQ(witness.use_count(), 1) << "the functions were destroyed with the context";
  EXPECT_EQ(kept->info().pending, 0u);
  ASSERT_EQ(abandoned.size(), 1u) << "once per executor";
  EXPECT_EQ(abandoned[0].group, "(shield executor)");
  EXPECT_EQ(abandoned[0].name, "flush");
}

TEST(shield_executor, an_idle_executor_is_not_reported_when_its_context_is_destroyed)
{
  int reports = 0;
  {
    asio::io_context ctx;
    asio::use_service<arc::registry>(ctx).on_abandoned([&](const arc::task_info&) { ++reports; });
    auto ex = arc::make_shield_executor(ctx.get_executor());
    asio::post(ex, [] {});
    ctx.run();
  }
  EXPECT_EQ(reports, 0);
}

TEST(shield_executor, used_after_its_context_is_destroyed_throws_context_destroyed_and_runs_nothing)
{
  std::optional<io_shield_executor> kept;
  {
    asio::io_context ctx;
    kept = arc::make_shield_executor(ctx.get_executor(), {.name = "late"});
  }
  auto witness = std::make_shared<int>(0);
  bool ran = false;
  error_code code;
  try
  {
    asio::post(*kept, [witness, &ran] { ran = true; });
  }
  catch (const boost::system::system_error& e)
  {
    code = e.code();
  }
  EXPECT_EQ(code, arc::error::context_destroyed);
  EXPECT_FALSE(ran);
  EXPECT_EQ(witness.use_count(), 1) << "the function was destroyed, not kept";
  EXPECT_EQ(kept->info().pending, 0u);
}

TEST(shield_executor_concurrency, posts_from_four_threads_to_a_pool_are_all_counted_and_run)
{
  asio::thread_pool pool(4);
  auto ex = arc::make_shield_executor(pool.get_executor(), {.name = "pool"});
  constexpr int per_thread = 5'000;
  std::atomic<int> ran{0};
  std::vector<std::thread> posters;
  for (int t = 0; t != 4; ++t)
    posters.emplace_back([&] {
      for (int i = 0; i != per_thread; ++i)
        asio::post(ex, [&] { ran.fetch_add(1, std::memory_order_relaxed); });
    });
  for (auto& t : posters)
    t.join();
  pool.join();
  EXPECT_EQ(ran.load(), 4 * per_thread);
  EXPECT_EQ(ex.info().pending, 0u);
}

TEST(shield_executor_concurrency, a_context_shutdown_on_a_pool_waits_for_tasks_spawned_on_it)
{
  asio::thread_pool pool(4);
  auto ex = arc::make_shield_executor(pool.get_executor(), {.name = "pool tasks"});
  constexpr int tasks = 50;
  std::atomic<int> finished{0};
  for (int i = 0; i != tasks; ++i)
    arc::co_spawn(ex,
        [&]() -> asio::awaitable<void> {
          asio::steady_timer t(co_await asio::this_coro::executor, 20ms);
          co_await t.async_wait(asio::use_awaitable);
          finished.fetch_add(1);
        },
        asio::detached);
  std::atomic<bool> done{false};
  std::atomic<int> finished_at_end{-1};
  error_code ec;
  asio::post(pool, [&] {
    arc::async_shutdown(pool, arc::reason::shutdown("stop"), {.grace = 1s, .force_after = 10s},
        [&](error_code e, arc::shutdown_report) {
          ec = e;
          finished_at_end = finished.load();
          done = true;
        });
  });
  ASSERT_TRUE(arc_test::wait_until([&] { return done.load(); }));
  pool.join();
  EXPECT_FALSE(ec);
  EXPECT_EQ(finished_at_end.load(), tasks);
}
