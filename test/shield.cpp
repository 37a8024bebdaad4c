// Tests for arc::shield: defer and detach, deadlines, the registry and a
// context's shutdown, and the edge cases peers pin down (S1-S4).
#include <arc/shield.hpp>

#include <arc/bind_cancel.hpp>
#include <arc/cancel_after.hpp>
#include <arc/persistent_task_group.hpp>
#include <arc/reasoned.hpp>
#include <arc/registry.hpp>

#include "shutdown_util.hpp"
#include "test_util.hpp"
#include "token_kinds.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
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
using arc_test::shut_down;

namespace {

asio::awaitable<void> sleep_for(std::chrono::steady_clock::duration d)
{
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(asio::use_awaitable);
}

// A commit that cancels the task awaiting it twice while it runs (R1, then
// R2), and then takes a while.
asio::awaitable<int> commit_cancelling(arc::cancel_source awaiting, arc::cancel_reason r1,
    arc::cancel_reason r2, bool* finished)
{
  co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
  awaiting.cancel(r1);
  co_await sleep_for(5ms);
  awaiting.cancel(r2);
  co_await sleep_for(30ms);
  *finished = true;
  co_return 42;
}

// What a task saw after its shield returned.
struct after_shield
{
  int value = 0;
  bool threw_next = false;
  arc::cancel_reason next_reason;
  std::size_t requests = 0;
  bool cancelled_inside = true;
};

} // namespace

// Work that outlives its awaiter (detach) must not be a capturing lambda:
// the closure is a temporary of the awaiter's co_await expression.
asio::awaitable<void> sleep_then_set(std::chrono::milliseconds d, bool* flag)
{
  co_await sleep_for(d);
  *flag = true;
}

asio::awaitable<void> sleep_then_throw(std::chrono::milliseconds d, const char* what)
{
  co_await sleep_for(d);
  throw std::runtime_error(what);
}


// Awaits a 1 h timer through arc::use_awaitable: the next cancellation point.
asio::awaitable<void> next_cancellation_point(after_shield& seen)
{
  asio::steady_timer t(co_await asio::this_coro::executor, 1h);
  try
  {
    co_await t.async_wait(arc::use_awaitable);
  }
  catch (const arc::cancelled_error& e)
  {
    seen.threw_next = true;
    seen.next_reason = e.reason();
  }
}

// --- S1: defer ---------------------------------------------------------------------

TEST(shield, defer_finishes_the_work_returns_its_result_then_the_next_await_throws_the_first_reason)
{
  asio::io_context ctx;
  const auto R1 = arc::reason::user("first");
  const auto R2 = arc::reason::user("second");
  bool finished = false;
  after_shield seen;
  arc_test::run_task(ctx, [&]() -> asio::awaitable<void> {
    seen.value = co_await arc::shield(commit_cancelling(arc::this_task::source(), R1, R2, &finished));
    seen.requests = arc::this_task::requests();
    seen.cancelled_inside = arc::this_task::cancelled();
    co_await next_cancellation_point(seen);
  }());
  EXPECT_TRUE(finished);
  EXPECT_EQ(seen.value, 42);
  EXPECT_EQ(seen.requests, 2u);
  EXPECT_TRUE(seen.cancelled_inside) << "recorded at once";
  EXPECT_TRUE(seen.threw_next);
  EXPECT_EQ(seen.next_reason, R1) << "the first reason sticks";
}

TEST(shield, inside_the_work_this_task_is_the_works_own_and_is_not_cancelled)
{
  asio::io_context ctx;
  bool in_task = false, cancelled = true;
  arc::cancel_source outer;
  arc_test::run_task(ctx, [&]() -> asio::awaitable<void> {
    outer = arc::this_task::source();
    co_await arc::shield([&]() -> asio::awaitable<void> {
      outer.cancel(arc::reason::user("stop"));
      co_await sleep_for(1ms);
      in_task = arc::this_task::in_task();
      cancelled = arc::this_task::cancelled();
    }());
  }());
  EXPECT_TRUE(in_task);
  EXPECT_FALSE(cancelled);
  EXPECT_TRUE(outer.cancelled());
}

TEST(shield, a_task_already_cancelled_enters_a_shield_and_the_work_still_runs_to_completion)
{
  asio::io_context ctx;
  const auto R = arc::reason::shutdown("before the shield");
  bool finished = false;
  after_shield seen;
  arc_test::run_task(ctx, [&]() -> asio::awaitable<void> {
    arc::this_task::source().cancel(R); // cancelled while it runs: not yet delivered
    co_await arc::shield([&]() -> asio::awaitable<void> {
      co_await sleep_for(10ms);
      finished = true;
    }());
    co_await next_cancellation_point(seen);
  }());
  EXPECT_TRUE(finished);
  EXPECT_TRUE(seen.threw_next);
  EXPECT_EQ(seen.next_reason, R);
}

TEST(shield, a_task_whose_cancellation_was_delivered_resets_asios_state_and_then_shields_its_cleanup)
{
  asio::io_context ctx;
  const auto R = arc::reason::shutdown("stop");
  bool caught = false, finished = false;
  arc_test::run_task(ctx, [&]() -> asio::awaitable<void> {
    asio::post(ctx, [src = arc::this_task::source(), R]() mutable { src.cancel(R); });
    try
    {
      co_await sleep_for(1h);
    }
    catch (const boost::system::system_error&)
    {
      caught = true;
    }
    // Asio's rule: after a delivered cancellation every co_await throws
    // until the coroutine's cancellation state is reset.
    co_await asio::this_coro::reset_cancellation_state();
    co_await arc::shield([&]() -> asio::awaitable<void> {
      co_await sleep_for(5ms);
      finished = true;
    }());
    EXPECT_EQ(arc::this_task::reason(), R);
  }());
  EXPECT_TRUE(caught);
  EXPECT_TRUE(finished);
}

TEST(shield, a_shield_whose_work_throws_rethrows_to_the_awaiter)
{
  asio::io_context ctx;
  std::string what;
  arc_test::run_task(ctx, [&]() -> asio::awaitable<void> {
    try
    {
      co_await arc::shield([]() -> asio::awaitable<void> {
        co_await sleep_for(1ms);
        throw std::runtime_error("disk full");
      }());
    }
    catch (const std::runtime_error& e)
    {
      what = e.what();
    }
  }());
  EXPECT_EQ(what, "disk full");
}

TEST(shield, a_task_whose_last_statement_is_a_defer_shield_ends_with_the_shields_result)
{
  asio::io_context ctx;
  std::exception_ptr result;
  int value = 0;
  bool done = false;
  arc::cancel_source src(ctx);
  arc::co_spawn(ctx,
      [&]() -> asio::awaitable<int> {
        co_return co_await arc::shield([&]() -> asio::awaitable<int> {
          src.cancel(arc::reason::user("too late"));
          co_await sleep_for(5ms);
          co_return 7;
        }());
      },
      arc::bind_cancel(src, [&](std::exception_ptr e, int v) {
        result = e;
        value = v;
        done = true;
      }));
  run_until(ctx, [&] { return done; });
  EXPECT_FALSE(result) << "the shield kept its promise; the task was not interrupted";
  EXPECT_EQ(value, 7);
  EXPECT_TRUE(src.cancelled());
}

// --- Edge cases ----------------------------------------------------------------------

TEST(shield, with_timeout_inside_a_shield_fires_as_a_timeout_while_the_outer_task_is_cancelled)
{
  asio::io_context ctx;
  error_code code;
  arc::cancel_reason why;
  arc_test::run_task(ctx, [&]() -> asio::awaitable<void> {
    auto self = arc::this_task::source();
    co_await arc::shield([&]() -> asio::awaitable<void> {
      self.cancel(arc::reason::shutdown("outer"));
      try
      {
        co_await arc::with_timeout(10ms, sleep_for(1h));
      }
      catch (const arc::cancelled_error& e)
      {
        code = e.code();
        why = e.reason();
      }
    }());
  }());
  EXPECT_EQ(code, arc::error::timed_out);
  EXPECT_EQ(why.kind(), arc::reason_kind::timeout);
}

TEST(shield, nested_shields_the_inner_one_does_not_hand_the_held_back_cancellation_to_the_outer_body)
{
  asio::io_context ctx;
  const auto R = arc::reason::user("outer task");
  bool outer_body_interrupted = false, outer_body_finished = false;
  after_shield seen;
  arc_test::run_task(ctx, [&]() -> asio::awaitable<void> {
    auto self = arc::this_task::source();
    co_await arc::shield([&]() -> asio::awaitable<void> {
      co_await arc::shield([&]() -> asio::awaitable<void> {
        self.cancel(R);
        co_await sleep_for(5ms);
      }());
      try
      {
        co_await sleep_for(5ms); // the outer body's next await: not cancelled
      }
      catch (const boost::system::system_error&)
      {
        outer_body_interrupted = true;
      }
      outer_body_finished = true;
    }());
    co_await next_cancellation_point(seen);
  }());
  EXPECT_FALSE(outer_body_interrupted);
  EXPECT_TRUE(outer_body_finished);
  EXPECT_TRUE(seen.threw_next) << "the task itself gets it after the outer shield";
  EXPECT_EQ(seen.next_reason, R);
}

TEST(shield, a_nested_co_spawn_and_an_awaitable_operator_inside_a_shield_are_not_cancelled_at_birth)
{
  using namespace asio::experimental::awaitable_operators;
  asio::io_context ctx;
  int child = 0;
  bool both = false;
  arc_test::run_task(ctx, [&]() -> asio::awaitable<void> {
    auto self = arc::this_task::source();
    co_await arc::shield([&]() -> asio::awaitable<void> {
      self.cancel(arc::reason::user("outer"));
      child = co_await arc::co_spawn(co_await asio::this_coro::executor,
          []() -> asio::awaitable<int> {
            co_await sleep_for(2ms);
            co_return 5;
          }(),
          asio::use_awaitable);
      co_await (sleep_for(2ms) && sleep_for(3ms));
      both = true;
    }());
  }());
  EXPECT_EQ(child, 5);
  EXPECT_TRUE(both);
}

// --- Deadline --------------------------------------------------------------------------

TEST(shield, a_deadline_forces_hanging_work_with_shield_deadline_and_the_shield_reports_it)
{
  asio::io_context ctx;
  error_code code;
  arc::cancel_reason why, inside;
  arc_test::run_task(ctx, [&]() -> asio::awaitable<void> {
    try
    {
      co_await arc::shield(
          [&]() -> asio::awaitable<void> {
            try
            {
              co_await sleep_for(1h);
            }
            catch (...)
            {
              inside = arc::this_task::reason();
              throw;
            }
          }(),
          {.deadline = 20ms, .name = "hangs"});
    }
    catch (const arc::cancelled_error& e)
    {
      code = e.code();
      why = e.reason();
    }
  }());
  EXPECT_EQ(code, arc::error::shield_deadline_exceeded);
  EXPECT_EQ(code, boost::system::errc::operation_canceled);
  EXPECT_EQ(why.kind(), arc::reason_kind::shield_deadline);
  EXPECT_EQ(inside, why) << "the work saw the deadline as its own reason";
  EXPECT_STREQ(why.where().file_name(), __FILE__);
}

TEST(shield, a_deadline_given_as_a_time_point_forces_too)
{
  asio::io_context ctx;
  error_code code;
  arc_test::run_task(ctx, [&]() -> asio::awaitable<void> {
    try
    {
      co_await arc::shield(sleep_for(1h), {.deadline_at = std::chrono::steady_clock::now() + 10ms});
    }
    catch (const arc::cancelled_error& e)
    {
      code = e.code();
    }
  }());
  EXPECT_EQ(code, arc::error::shield_deadline_exceeded);
}

TEST(shield, work_that_finishes_before_its_deadline_is_not_forced)
{
  asio::io_context ctx;
  int v = 0;
  arc_test::run_task(ctx, [&]() -> asio::awaitable<void> {
    v = co_await arc::shield(
        []() -> asio::awaitable<int> {
          co_await sleep_for(1ms);
          co_return 3;
        }(),
        {.deadline = 1h});
  }());
  EXPECT_EQ(v, 3);
  EXPECT_TRUE(arc::shields(ctx).empty());
}

// --- S2: detach --------------------------------------------------------------------------

TEST(shield, detach_releases_the_cancelled_awaiter_at_once_and_the_work_completes_observably)
{
  asio::io_context ctx;
  const auto R = arc::reason::user("client gone");
  bool finished = false, awaiter_resumed_before_work = false;
  std::exception_ptr work_result = std::make_exception_ptr(1);
  error_code code;
  arc::cancel_reason why;
  std::vector<arc::shield_info> while_detached;
  arc_test::run_task(ctx, [&]() -> asio::awaitable<void> {
    asio::post(ctx, [src = arc::this_task::source(), R]() mutable { src.cancel(R); });
    try
    {
      co_await arc::shield(sleep_then_set(20ms, &finished),
          {.policy = arc::shield_policy::detach, .name = "commit"},
          [&](std::exception_ptr e) { work_result = e; });
    }
    catch (const arc::cancelled_error& e)
    {
      code = e.code();
      why = e.reason();
      awaiter_resumed_before_work = !finished;
      while_detached = arc::shields(ctx);
    }
  }());
  EXPECT_TRUE(awaiter_resumed_before_work);
  EXPECT_EQ(code, asio::error::operation_aborted);
  EXPECT_EQ(why, R);
  ASSERT_EQ(while_detached.size(), 1u);
  EXPECT_EQ(while_detached[0].name, "commit");
  EXPECT_TRUE(while_detached[0].detached);
  EXPECT_EQ(while_detached[0].status, arc::shield_status::running);
  ctx.restart();
  ctx.run(); // the shield holds work: run() returns once the work is done
  EXPECT_TRUE(finished);
  EXPECT_FALSE(work_result) << "on_detached_done got the work's outcome";
  EXPECT_TRUE(arc::shields(ctx).empty());
}

TEST(shield, detach_without_a_callback_reports_a_failure_nobody_received_once)
{
  asio::io_context ctx;
  std::vector<std::string> reported;
  asio::use_service<arc::registry>(ctx).on_shield_error(
      [&](std::exception_ptr e, const arc::shield_info& info) {
        try
        {
          std::rethrow_exception(e);
        }
        catch (const std::exception& x)
        {
          reported.push_back(info.name + ": " + x.what());
        }
      });
  arc_test::run_task(ctx, [&]() -> asio::awaitable<void> {
    asio::post(ctx, [src = arc::this_task::source()]() mutable { src.cancel(); });
    try
    {
      co_await arc::shield(sleep_then_throw(5ms, "write failed"),
          {.policy = arc::shield_policy::detach, .name = "audit"});
    }
    catch (const arc::cancelled_error&)
    {
    }
  }());
  ctx.restart();
  ctx.run();
  ASSERT_EQ(reported.size(), 1u);
  EXPECT_EQ(reported[0], "audit: write failed");
}

TEST(shield, detach_that_is_not_cancelled_returns_the_result_like_defer)
{
  asio::io_context ctx;
  int v = 0;
  arc_test::run_task(ctx, [&]() -> asio::awaitable<void> {
    v = co_await arc::shield(
        []() -> asio::awaitable<int> {
          co_await sleep_for(1ms);
          co_return 9;
        }(),
        {.policy = arc::shield_policy::detach});
  }());
  EXPECT_EQ(v, 9);
}

// --- Groups, the registry and a context's shutdown (S3, S4) -------------------------------

TEST(shield, a_groups_cancel_and_its_escalation_do_not_reach_a_child_inside_a_shield)
{
  asio::io_context ctx;
  arc::persistent_task_group g(ctx, {.name = "g"});
  bool finished = false;
  arc::cancel_reason after;
  g.spawn([&]() -> asio::awaitable<void> {
    co_await arc::shield([&]() -> asio::awaitable<void> {
      co_await sleep_for(60ms);
      finished = true;
    }());
    after = arc::this_task::reason();
  });
  error_code ec = asio::error::fault;
  arc::shutdown_report report;
  bool done = false;
  asio::post(ctx, [&] {
    g.async_shutdown(arc::reason::shutdown("deploy"), {.grace = 10ms, .force_after = 10s},
        [&](error_code e, arc::shutdown_report r) {
          ec = e;
          report = std::move(r);
          done = true;
        });
  });
  run_until(ctx, [&] { return done; });
  EXPECT_TRUE(finished) << "neither the cancel nor the escalation cut the shielded work";
  EXPECT_FALSE(ec);
  EXPECT_EQ(report.escalated.size(), 1u) << "the child was escalated, and still finished its shield";
  EXPECT_EQ(after.kind(), arc::reason_kind::parent);
}

TEST(shield, a_context_shutdown_waits_for_a_shield_to_finish_and_lists_it)
{
  asio::io_context ctx;
  bool finished = false;
  arc::co_spawn(ctx, arc::shield(sleep_then_set(50ms, &finished), {.name = "order 17"}), asio::detached);
  error_code ec = asio::error::fault;
  arc::shutdown_report report;
  bool done = false, finished_first = false;
  asio::post(ctx, [&] {
    ASSERT_EQ(arc::shields(ctx).size(), 1u);
    arc::async_shutdown(ctx, arc::reason::shutdown("stop"), {.grace = 1s, .force_after = 10s},
        [&](error_code e, arc::shutdown_report r) {
          finished_first = finished;
          ec = e;
          report = std::move(r);
          done = true;
        });
  });
  run_until(ctx, [&] { return done; });
  EXPECT_TRUE(finished_first) << "the shutdown completed only after the shield's work";
  EXPECT_FALSE(ec);
  ASSERT_EQ(report.shields.size(), 1u);
  EXPECT_EQ(report.shields[0].name, "order 17");
  EXPECT_EQ(report.shields[0].status, arc::shield_status::done);
  EXPECT_FALSE(report.shields[0].forced);
  EXPECT_TRUE(report.complete());
}

TEST(shield, a_context_shutdown_lists_a_shield_a_group_child_was_in_when_it_began)
{
  asio::io_context ctx;
  arc::persistent_task_group g(ctx, {.name = "orders"});
  bool committed = false;
  g.spawn([&]() -> asio::awaitable<void> {
    co_await arc::shield(sleep_then_set(40ms, &committed), {.name = "order 7"});
  });
  auto [ec, report] = shut_down(ctx, {.grace = 1s, .force_after = 10s}, 5ms);
  EXPECT_TRUE(committed);
  EXPECT_FALSE(ec);
  EXPECT_EQ(report.finished, 1u) << "the child, which waited for its shield";
  ASSERT_EQ(report.shields.size(), 1u) << "the shield ended before the group did, and is listed";
  EXPECT_EQ(report.shields[0].name, "order 7");
  EXPECT_EQ(report.shields[0].status, arc::shield_status::done);
}

TEST(shield, a_context_shutdown_sees_a_hanging_shield_forced_at_its_deadline)
{
  asio::io_context ctx;
  error_code shield_code;
  arc::co_spawn(ctx,
      [&]() -> asio::awaitable<void> {
        try
        {
          co_await arc::shield(sleep_for(1h), {.deadline = 30ms, .name = "stuck"});
        }
        catch (const arc::cancelled_error& e)
        {
          shield_code = e.code();
        }
      },
      asio::detached);
  auto [ec, report] = shut_down(ctx, {.grace = 1s, .force_after = 10s});
  EXPECT_FALSE(ec);
  EXPECT_EQ(shield_code, arc::error::shield_deadline_exceeded);
  ASSERT_EQ(report.shields.size(), 1u);
  EXPECT_TRUE(report.shields[0].forced);
  EXPECT_EQ(report.shields[0].status, arc::shield_status::done);
  std::ostringstream out;
  out << report;
  EXPECT_NE(out.str().find("shield stuck #"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("forced at its deadline"), std::string::npos) << out.str();
}

TEST(shield, a_shield_without_a_deadline_is_bounded_by_force_after_and_reported_still_running)
{
  asio::io_context ctx;
  arc::co_spawn(ctx, arc::shield(sleep_for(300ms), {.name = "slow"}), asio::detached);
  auto [ec, report] = shut_down(ctx, {.grace = 10ms, .force_after = 30ms});
  EXPECT_EQ(ec, arc::error::shutdown_incomplete);
  ASSERT_EQ(report.shields.size(), 1u);
  EXPECT_EQ(report.shields[0].status, arc::shield_status::running);
  EXPECT_FALSE(report.complete());
  ctx.run(); // the shield still finishes
  EXPECT_TRUE(arc::shields(ctx).empty());
}

TEST(shield, destroying_the_context_with_a_shield_pending_reports_it_abandoned_and_leaks_nothing)
{
  std::vector<arc::task_info> abandoned;
  {
    asio::io_context ctx;
    asio::use_service<arc::registry>(ctx).on_abandoned(
        [&](const arc::task_info& t) { abandoned.push_back(t); });
    arc::co_spawn(ctx, arc::shield(sleep_for(1h), {.name = "pending"}), asio::detached);
    ctx.run_for(5ms);
    EXPECT_EQ(arc::shields(ctx).size(), 1u);
  }
  ASSERT_EQ(abandoned.size(), 1u);
  EXPECT_EQ(abandoned[0].group, "(shield)");
  EXPECT_EQ(abandoned[0].name, "pending");
}

// --- Threads -------------------------------------------------------------------------------

TEST(shield_concurrency, shields_on_a_thread_pool_finish_while_their_tasks_are_cancelled_from_another_thread)
{
  asio::thread_pool pool(4);
  const std::size_t n = arc_test::stress(200);
  std::atomic<std::size_t> finished{0}, next_threw{0}, done{0};
  std::vector<arc::cancel_source> sources;
  for (std::size_t i = 0; i != n; ++i)
    sources.emplace_back(pool.get_executor());
  for (std::size_t i = 0; i != n; ++i)
    arc::co_spawn(asio::make_strand(pool),
        [&]() -> asio::awaitable<void> {
          co_await arc::shield([&]() -> asio::awaitable<void> {
            co_await sleep_for(2ms);
            finished.fetch_add(1);
          }());
          try
          {
            co_await sleep_for(1h);
          }
          catch (const boost::system::system_error&)
          {
            next_threw.fetch_add(1);
          }
        },
        arc::bind_cancel(sources[i], [&](std::exception_ptr) { done.fetch_add(1); }));
  std::thread canceller([&] {
    for (auto& s : sources)
      s.cancel(arc::reason::shutdown("pool"));
  });
  canceller.join();
  arc_test::wait_until([&] { return done.load() == n; });
  pool.join();
  EXPECT_EQ(finished.load(), n);
  EXPECT_EQ(next_threw.load(), n);
}

// --- arc::shielded, the token form ------------------------------------------------

namespace {

// The operation is shielded, with a 30 ms deadline, from a cancel_source that
// the request cancels: only the deadline ends the 1 h wait.
struct shielded_from_src
{
  static constexpr bool appends_reason = false;
  template <typename Token>
  auto operator()(arc_test::token_fixture& f, Token&& token) const
  {
    return arc::shielded(30ms, arc::bind_cancel(f.src, std::forward<Token>(token)));
  }
};

static_assert(std::is_same_v<asio::completion_signature_of_t<decltype(std::declval<asio::steady_timer&>().async_wait(
                                 arc::shielded(asio::deferred)))>,
    void(error_code)>);
static_assert(std::is_same_v<asio::completion_signature_of_t<decltype(std::declval<asio::steady_timer&>().async_wait(
                                 arc::shielded(10ms, asio::deferred)))>,
    void(error_code)>);

template <typename Kind>
class shielded_token : public ::testing::Test
{
protected:
  arc_test::token_fixture f;
};

} // namespace

TYPED_TEST_SUITE(shielded_token, arc_test::all_token_kinds, arc_test::token_kind_name);

TYPED_TEST(shielded_token, an_outer_request_does_not_abort_it_and_its_deadline_does)
{
  auto& f = this->f;
  f.src = arc::cancel_source(f.ctx);
  const arc_test::observed o = TypeParam::run(f, shielded_from_src{},
      [&] { f.src.cancel(arc::reason::user("outer")); });
  EXPECT_EQ(o.calls, 1);
  EXPECT_EQ(o.ec, arc::error::shield_deadline_exceeded)
      << "not operation_aborted: the outer request did not reach it";
}

TEST(shielded, the_operation_is_listed_and_a_context_shutdown_waits_for_it)
{
  asio::io_context ctx;
  asio::steady_timer timer(ctx, 40ms);
  error_code got = asio::error::fault;
  timer.async_wait(arc::shielded([&](error_code e) { got = e; }));
  const std::vector<arc::shield_info> listed = arc::shields(ctx);
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].status, arc::shield_status::running);
  EXPECT_EQ(std::string(listed[0].where.file_name()).find("shield.cpp") != std::string::npos, true)
      << "where: the shielded() call";
  auto [ec, report] = shut_down(ctx, {.grace = 1s, .force_after = 10s});
  EXPECT_FALSE(got) << "the timer completed normally, before the shutdown did";
  EXPECT_FALSE(ec);
  ASSERT_EQ(report.shields.size(), 1u);
  EXPECT_EQ(report.shields[0].status, arc::shield_status::done);
  EXPECT_TRUE(arc::shields(ctx).empty());
}

TEST(shielded, a_cancelled_coroutine_waits_for_its_shielded_operation_to_complete)
{
  asio::io_context ctx;
  arc::persistent_task_group g(ctx, {.name = "writers"});
  error_code wait_ec = asio::error::fault;
  bool threw_next = false;
  g.spawn([&]() -> asio::awaitable<void> {
    asio::steady_timer t(co_await asio::this_coro::executor, 40ms);
    co_await t.async_wait(arc::shielded(asio::redirect_error(asio::use_awaitable, wait_ec)));
    asio::steady_timer next(co_await asio::this_coro::executor, 1h);
    try
    {
      co_await next.async_wait(asio::use_awaitable);
    }
    catch (const boost::system::system_error&)
    {
      threw_next = true;
    }
  });
  auto [ec, report] = shut_down(ctx, {.grace = 1s, .force_after = 10s}, 5ms);
  EXPECT_FALSE(wait_ec) << "the group's cancel did not abort the shielded wait";
  EXPECT_TRUE(threw_next) << "the cancellation reached the coroutine's next operation";
  EXPECT_FALSE(ec);
}

TEST(shielded, a_handler_destroyed_unrun_with_its_context_is_reported_abandoned)
{
  std::vector<arc::task_info> abandoned;
  {
    asio::io_context ctx;
    asio::use_service<arc::registry>(ctx).on_abandoned(
        [&](const arc::task_info& t) { abandoned.push_back(t); });
    asio::steady_timer timer(ctx, 1h);
    timer.async_wait(arc::shielded([](error_code) {}));
    ctx.poll();
  }
  ASSERT_EQ(abandoned.size(), 1u);
  EXPECT_EQ(abandoned[0].group, "(shield)");
}

TEST(shielded, the_completion_runs_on_the_handlers_executor)
{
  asio::io_context ctx;
  auto strand = asio::make_strand(ctx);
  asio::steady_timer timer(ctx, 1ms);
  bool on_strand = false;
  timer.async_wait(arc::shielded(asio::bind_executor(strand, [&](error_code) {
    on_strand = strand.running_in_this_thread();
  })));
  ctx.run();
  EXPECT_TRUE(on_strand);
}
