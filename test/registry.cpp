// Tests for arc::registry: groups(ctx), on_abandoned, arc::async_shutdown(ctx)
// and arc::shutdown_on_signals.
#include <arc/registry.hpp>

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
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using boost::system::error_code;
using arc_test::run_until;

namespace {

static_assert(std::is_same_v<asio::completion_signature_of_t<decltype(arc::async_shutdown(
                                 std::declval<asio::io_context&>(), arc::reason::shutdown(),
                                 arc::shutdown_options{}, asio::deferred))>,
    void(error_code, arc::shutdown_report)>);
static_assert(std::is_same_v<asio::completion_signature_of_t<decltype(arc::shutdown_on_signals(
                                 std::declval<asio::io_context&>(), {SIGTERM},
                                 arc::shutdown_options{}, asio::deferred))>,
    void(error_code, arc::shutdown_report)>);

asio::awaitable<void> sleeper()
{
  asio::steady_timer t(co_await asio::this_coro::executor, 1h);
  co_await t.async_wait(asio::use_awaitable);
}

// Ignores every cancellation for @p d.
asio::awaitable<void> deaf(std::chrono::milliseconds d)
{
  const auto until = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < until)
  {
    co_await asio::this_coro::reset_cancellation_state();
    asio::steady_timer t(co_await asio::this_coro::executor, until);
    co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

// --- G4: the registry knows the groups --------------------------------------------------

TEST(registry, groups_lists_each_group_with_its_live_tasks_until_it_is_destroyed)
{
  asio::io_context ctx;
  EXPECT_TRUE(arc::groups(ctx).empty());
  {
    arc::persistent_task_group a(ctx, {.name = "a"});
    arc::persistent_task_group b(ctx, {.name = "b"});
    a.spawn(sleeper(), arc::spawn_options{.name = "a1"});
    a.spawn(sleeper(), arc::spawn_options{.name = "a2"});
    std::vector<arc::group_info> gs = arc::groups(ctx);
    ASSERT_EQ(gs.size(), 2u);
    EXPECT_EQ(gs[0].name, "a");
    EXPECT_EQ(gs[0].size, 2u);
    ASSERT_EQ(gs[0].tasks.size(), 2u);
    EXPECT_EQ(gs[0].tasks[1].name, "a2");
    EXPECT_FALSE(gs[0].closed);
    EXPECT_EQ(gs[1].name, "b");
    EXPECT_EQ(gs[1].size, 0u);
  }
  EXPECT_TRUE(arc::groups(ctx).empty()) << "a destroyed group leaves the registry";
  ctx.run();
}

// --- G6: the context destroyed with live children ------------------------------------------

TEST(registry, destroying_the_context_reports_every_live_child_as_abandoned)
{
  std::vector<arc::task_info> abandoned;
  auto ctx = std::make_unique<asio::io_context>();
  asio::use_service<arc::registry>(*ctx).on_abandoned(
      [&](const arc::task_info& t) { abandoned.push_back(t); });
  arc::persistent_task_group g(*ctx, {.name = "doomed"});
  for (int i = 0; i != 100; ++i)
    g.spawn(sleeper(), arc::spawn_options{.name = "t" + std::to_string(i)});
  ctx->poll();
  ctx.reset();
  ASSERT_EQ(abandoned.size(), 100u);
  EXPECT_EQ(abandoned[0].group, "doomed");
  EXPECT_EQ(g.size(), 0u);
}

TEST(registry, by_default_an_abandoned_child_is_one_line_on_stderr)
{
  auto ctx = std::make_unique<asio::io_context>();
  arc::persistent_task_group g(*ctx, {.name = "doomed"});
  g.spawn(sleeper(), arc::spawn_options{.name = "last words"});
  ctx->poll();
  testing::internal::CaptureStderr();
  ctx.reset();
  const std::string out = testing::internal::GetCapturedStderr();
  EXPECT_NE(out.find("doomed"), std::string::npos) << out;
  EXPECT_NE(out.find("last words"), std::string::npos) << out;
  EXPECT_NE(out.find("destroyed unfinished"), std::string::npos) << out;
}

// --- arc::async_shutdown(ctx) ------------------------------------------------------------

TEST(registry, async_shutdown_shuts_every_group_down_and_merges_their_reports)
{
  asio::io_context ctx;
  arc::persistent_task_group a(ctx, {.name = "a"});
  arc::persistent_task_group b(ctx, {.name = "b"});
  const arc::cancel_reason R = arc::reason::shutdown("maintenance");
  arc::cancel_reason seen_a, seen_b;
  a.spawn(
      [&]() -> asio::awaitable<void>
      {
        try
        {
          co_await sleeper();
        }
        catch (...)
        {
          seen_a = arc::this_task::reason();
        }
      });
  b.spawn(
      [&]() -> asio::awaitable<void>
      {
        try
        {
          co_await sleeper();
        }
        catch (...)
        {
          seen_b = arc::this_task::reason();
        }
      });
  b.spawn(sleeper());
  error_code ec = asio::error::fault;
  arc::shutdown_report report;
  int calls = 0;
  asio::post(ctx, [&] {
    arc::async_shutdown(ctx, R, {}, [&](error_code e, arc::shutdown_report r) {
      ec = e;
      report = std::move(r);
      ++calls;
    });
    EXPECT_TRUE(a.closed()) << "closed at once";
    EXPECT_TRUE(b.closed());
  });
  ctx.run();
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(ec);
  EXPECT_EQ(report.finished, 3u);
  EXPECT_EQ(report.reason, R);
  EXPECT_EQ(seen_a.cause(), R);
  EXPECT_EQ(seen_b.cause(), R);
}

TEST(registry, async_shutdown_of_a_context_without_groups_completes_through_each_token_kind)
{
  asio::io_context ctx;
  auto fut = arc::async_shutdown(ctx, arc::reason::shutdown(), {}, asio::use_future);
  error_code by_awaitable = asio::error::fault;
  arc::co_spawn(ctx,
      [&]() -> asio::awaitable<void>
      {
        auto [e, r] = co_await arc::async_shutdown(ctx, arc::reason::shutdown(), {},
            asio::as_tuple(asio::use_awaitable));
        by_awaitable = e;
      },
      asio::detached);
  int by_deferred = 0;
  arc::async_shutdown(ctx, arc::reason::shutdown(), {}, asio::deferred)(
      [&](error_code e, arc::shutdown_report) { by_deferred += !e; });
  ctx.run();
  EXPECT_TRUE(fut.get().complete());
  EXPECT_FALSE(by_awaitable);
  EXPECT_EQ(by_deferred, 1);
}

TEST(registry, a_context_shutdown_that_gives_up_lists_the_stragglers_of_every_group_oldest_first)
{
  asio::io_context ctx;
  arc::persistent_task_group a(ctx, {.name = "a"});
  arc::persistent_task_group b(ctx, {.name = "b"});
  a.spawn(deaf(300ms), arc::spawn_options{.name = "older"});
  ctx.poll();
  std::this_thread::sleep_for(2ms);
  b.spawn(deaf(300ms), arc::spawn_options{.name = "younger"});
  error_code ec;
  arc::shutdown_report report;
  bool done = false;
  arc::async_shutdown(ctx, arc::reason::shutdown(), {.grace = 10ms, .force_after = 30ms},
      [&](error_code e, arc::shutdown_report r) {
        ec = e;
        report = std::move(r);
        done = true;
      });
  run_until(ctx, [&] { return done; });
  EXPECT_EQ(ec, arc::error::shutdown_incomplete);
  ASSERT_EQ(report.stragglers.size(), 2u);
  EXPECT_EQ(report.stragglers[0].name, "older");
  EXPECT_EQ(report.stragglers[1].name, "younger");
  EXPECT_EQ(report.escalated.size(), 2u);
  ctx.run();
}

TEST(registry, cancelling_a_context_shutdown_stops_the_waiting_only)
{
  asio::io_context ctx;
  arc::persistent_task_group g(ctx);
  g.spawn(deaf(30ms));
  asio::cancellation_signal sig;
  error_code ec;
  int calls = 0;
  arc::async_shutdown(ctx, arc::reason::shutdown(), {.grace = 10s, .force_after = 20s},
      asio::bind_cancellation_slot(sig.slot(), [&](error_code e, arc::shutdown_report) {
        ec = e;
        ++calls;
      }));
  asio::post(ctx, [&] { asio::post(ctx, [&] { sig.emit(asio::cancellation_type::terminal); }); });
  run_until(ctx, [&] { return calls == 1; });
  EXPECT_EQ(ec, asio::error::operation_aborted);
  EXPECT_TRUE(g.closed());
  ctx.run();
  EXPECT_EQ(g.size(), 0u);
}

// --- shutdown_on_signals ---------------------------------------------------------------------

TEST(registry, the_first_signal_shuts_every_group_down_with_a_signal_reason)
{
  asio::io_context ctx;
  arc::persistent_task_group g(ctx, {.name = "conns"});
  arc::cancel_reason seen;
  g.spawn(
      [&]() -> asio::awaitable<void>
      {
        try
        {
          co_await sleeper();
        }
        catch (...)
        {
          seen = arc::this_task::reason();
        }
      });
  error_code ec = asio::error::fault;
  arc::shutdown_report report;
  bool done = false;
  const int line = __LINE__ + 1;
  arc::shutdown_on_signals(ctx, {SIGINT, SIGTERM}, {}, [&](error_code e, arc::shutdown_report r) {
    ec = e;
    report = std::move(r);
    done = true;
  });
  asio::post(ctx, [] { std::raise(SIGTERM); });
  run_until(ctx, [&] { return done; });
  EXPECT_FALSE(ec);
  EXPECT_EQ(report.reason.kind(), arc::reason_kind::signal);
  EXPECT_EQ(report.reason.signal_number(), SIGTERM);
  // "Who cancelled": the call to shutdown_on_signals, not arc's own code.
  EXPECT_EQ(report.reason.where().line(), static_cast<std::uint_least32_t>(line));
  EXPECT_STREQ(report.reason.where().file_name(), __FILE__);
  EXPECT_EQ(seen.kind(), arc::reason_kind::parent);
  EXPECT_EQ(seen.cause().signal_number(), SIGTERM);
  EXPECT_EQ(report.finished, 1u);
  EXPECT_TRUE(g.closed());
}

TEST(registry, a_second_signal_escalates_at_once_and_a_third_gives_up)
{
  asio::io_context ctx;
  arc::persistent_task_group g(ctx, {.name = "g"});
  std::vector<arc::cancel_reason> history;
  g.spawn(
      [&]() -> asio::awaitable<void>
      {
        try
        {
          co_await sleeper();
        }
        catch (...)
        {
        }
        co_await asio::this_coro::reset_cancellation_state();
        try
        {
          co_await sleeper();
        }
        catch (...)
        {
          history = arc::this_task::source().history();
        }
        co_await asio::this_coro::reset_cancellation_state();
        co_await deaf(200ms); // ignores the rest
      },
      arc::spawn_options{.name = "stubborn"});
  error_code ec;
  arc::shutdown_report report;
  bool done = false;
  arc::shutdown_on_signals(ctx, {SIGUSR1}, {.grace = 10s, .force_after = 20s},
      [&](error_code e, arc::shutdown_report r) {
        ec = e;
        report = std::move(r);
        done = true;
      });
  asio::post(ctx, [] { std::raise(SIGUSR1); });
  run_until(ctx, [&] { return g.closed(); });
  asio::post(ctx, [] { std::raise(SIGUSR1); });
  run_until(ctx, [&] { return history.size() == 2; });
  EXPECT_EQ(history[1].kind(), arc::reason_kind::escalated);
  EXPECT_FALSE(done);
  asio::post(ctx, [] { std::raise(SIGUSR1); });
  run_until(ctx, [&] { return done; });
  EXPECT_EQ(ec, arc::error::shutdown_incomplete);
  ASSERT_EQ(report.stragglers.size(), 1u);
  EXPECT_EQ(report.stragglers[0].name, "stubborn");
  EXPECT_EQ(report.stragglers[0].status, arc::task_status::escalated);
  std::ostringstream text;
  text << report;
  EXPECT_NE(text.str().find("straggler: g/stubborn"), std::string::npos) << text.str();
  ctx.run();
}

TEST(registry, cancelling_shutdown_on_signals_before_a_signal_stops_it_listening)
{
  asio::io_context ctx;
  arc::persistent_task_group g(ctx);
  asio::cancellation_signal sig;
  error_code ec;
  int calls = 0;
  arc::shutdown_on_signals(ctx, {SIGUSR2}, {},
      asio::bind_cancellation_slot(sig.slot(), [&](error_code e, arc::shutdown_report) {
        ec = e;
        ++calls;
      }));
  asio::post(ctx, [&] { asio::post(ctx, [&] { sig.emit(asio::cancellation_type::terminal); }); });
  ctx.run();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(ec, asio::error::operation_aborted);
  EXPECT_FALSE(g.closed());
}

} // namespace
