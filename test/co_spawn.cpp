// Tests for arc/co_spawn.hpp: arc::co_spawn and this_task.
#include <arc/co_spawn.hpp>

#include <arc/bind_cancel.hpp>
#include <arc/cancel_after.hpp>
#include <arc/error.hpp>

#include "test_util.hpp"

#include <boost/asio/experimental/promise.hpp>
#include <boost/asio/experimental/use_promise.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/connect_pair.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <atomic>
#include <functional>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using boost::system::error_code;

namespace {

struct my_tag
{
  int v;
};

static_assert(std::is_same_v<asio::completion_signature_of_t<decltype(arc::co_spawn(
                                 std::declval<asio::io_context&>(),
                                 std::declval<asio::awaitable<int>>(), asio::deferred))>,
    void(std::exception_ptr, int)>);
static_assert(std::is_same_v<asio::completion_signature_of_t<decltype(arc::co_spawn(
                                 std::declval<asio::io_context&>(),
                                 std::declval<asio::awaitable<void>>(), asio::deferred))>,
    void(std::exception_ptr)>);

// Waits "forever"; records what the task saw when it was cancelled.
struct observation
{
  error_code ec;
  arc::cancel_reason reason;
  std::size_t requests = 0;
  bool in_task = false;
};

asio::awaitable<void> wait_forever(observation& seen)
{
  seen.in_task = arc::this_task::in_task();
  asio::steady_timer t(co_await asio::this_coro::executor, 1h);
  try
  {
    co_await t.async_wait(asio::use_awaitable);
  }
  catch (const boost::system::system_error& e)
  {
    seen.ec = e.code();
    seen.reason = arc::this_task::reason();
    seen.requests = arc::this_task::requests();
    throw;
  }
}

asio::awaitable<int> answer()
{
  co_return 42;
}

} // namespace

// R1
TEST(co_spawn, a_cancelled_task_sees_the_reason_tag_and_cancel_site)
{
  asio::io_context ctx;
  arc::cancel_source src;
  observation seen;
  std::exception_ptr failure;
  bool done = false;
  arc::co_spawn(ctx, wait_forever(seen), arc::bind_cancel(src, [&](std::exception_ptr e) {
    failure = e;
    done = true;
  }));
  int line = 0;
  asio::post(ctx, [&] {
    line = __LINE__; src.cancel(arc::reason::user("stop", my_tag{7}));
  });
  arc_test::run_until(ctx, [&] { return done; });
  EXPECT_TRUE(failure);
  EXPECT_EQ(seen.ec, asio::error::operation_aborted);
  EXPECT_EQ(seen.reason.kind(), arc::reason_kind::user);
  EXPECT_EQ(seen.reason.message(), "stop");
  ASSERT_NE(seen.reason.tag<my_tag>(), nullptr);
  EXPECT_EQ(seen.reason.tag<my_tag>()->v, 7);
  EXPECT_EQ(seen.reason.where().line(), static_cast<unsigned>(line));
  EXPECT_NE(std::string_view(seen.reason.where().file_name()).find("co_spawn.cpp"),
      std::string_view::npos);
}

// R2: A awaits B; B waits on a socket read that never completes.
TEST(co_spawn, a_child_task_sees_its_parents_reason_as_cause)
{
  asio::io_context ctx;
  asio::local::stream_protocol::socket a(ctx), b(ctx);
  asio::local::connect_pair(a, b);

  arc::cancel_reason b_reason, a_reason, awaiter_reason;
  auto task_b = [&]() -> asio::awaitable<void> {
    char buf[1];
    try
    {
      co_await asio::async_read(a, asio::buffer(buf), asio::use_awaitable);
    }
    catch (const boost::system::system_error&)
    {
      b_reason = arc::this_task::reason();
      throw;
    }
  };
  auto task_a = [&]() -> asio::awaitable<void> {
    try
    {
      co_await arc::co_spawn(co_await asio::this_coro::executor, task_b(), asio::use_awaitable);
    }
    catch (const boost::system::system_error&)
    {
      a_reason = arc::this_task::reason();
      throw;
    }
  };

  arc::cancel_source src;
  bool done = false;
  arc::co_spawn(ctx, task_a(), arc::with_reason(src, [&](std::exception_ptr, arc::cancel_reason r) {
    awaiter_reason = r;
    done = true;
  }));
  const auto R = arc::reason::shutdown("R");
  asio::post(ctx, [&] { src.cancel(R); });
  arc_test::run_until(ctx, [&] { return done; });

  EXPECT_EQ(a_reason, R);
  EXPECT_EQ(awaiter_reason, R);
  EXPECT_EQ(b_reason.kind(), arc::reason_kind::parent);
  EXPECT_EQ(b_reason.cause(), R);
  const auto text = arc::to_string(b_reason);
  EXPECT_EQ(text.rfind("parent <- shutdown \"R\"", 0), 0u) << text;
}

// R8
TEST(co_spawn, a_plain_asio_signal_cancels_with_an_unspecified_reason)
{
  asio::io_context ctx;
  asio::cancellation_signal sig;
  observation seen;
  bool done = false;
  arc::co_spawn(ctx, wait_forever(seen),
      asio::bind_cancellation_slot(sig.slot(), [&](std::exception_ptr e) {
        EXPECT_TRUE(e);
        done = true;
      }));
  asio::post(ctx, [&] { sig.emit(asio::cancellation_type::terminal); });
  arc_test::run_until(ctx, [&] { return done; });
  EXPECT_EQ(seen.ec, asio::error::operation_aborted);
  EXPECT_EQ(seen.reason.kind(), arc::reason_kind::unspecified);
}

TEST(co_spawn, this_task_source_cancels_the_task_itself)
{
  asio::io_context ctx;
  bool threw = false;
  arc::cancel_reason seen;
  arc_test::run_task(ctx, [&]() -> asio::awaitable<void> {
    arc::this_task::source().cancel(arc::reason::user("self"));
    asio::steady_timer t(co_await asio::this_coro::executor, 1h);
    try
    {
      co_await t.async_wait(asio::use_awaitable);
    }
    catch (const boost::system::system_error&)
    {
      threw = true;
      seen = arc::this_task::reason();
    }
  }());
  EXPECT_TRUE(threw);
  EXPECT_EQ(seen.message(), "self");
}

TEST(co_spawn, outside_a_task_this_task_reports_nothing_and_source_throws_not_in_task)
{
  EXPECT_FALSE(arc::this_task::in_task());
  EXPECT_TRUE(arc::this_task::reason().empty());
  EXPECT_FALSE(arc::this_task::cancelled());
  EXPECT_EQ(arc::this_task::requests(), 0u);
  try
  {
    (void)arc::this_task::source();
    FAIL() << "source() should throw outside a task";
  }
  catch (const boost::system::system_error& e)
  {
    EXPECT_EQ(e.code(), arc::error::not_in_task);
  }
}

TEST(co_spawn, the_task_context_is_not_visible_in_the_completion_handler)
{
  asio::io_context ctx;
  bool in_task_inside = false, in_task_in_handler = true;
  auto body = [&]() -> asio::awaitable<void> {
    in_task_inside = arc::this_task::in_task();
    co_return;
  };
  arc::co_spawn(ctx, body(), [&](std::exception_ptr) { in_task_in_handler = arc::this_task::in_task(); });
  ctx.run();
  EXPECT_TRUE(in_task_inside);
  EXPECT_FALSE(in_task_in_handler);
}

TEST(co_spawn, a_task_spawned_on_an_already_cancelled_source_is_cancelled_at_its_first_wait)
{
  asio::io_context ctx;
  arc::cancel_source src;
  src.cancel(arc::reason::user("before start"));
  observation seen;
  bool done = false;
  arc::co_spawn(ctx, wait_forever(seen), arc::bind_cancel(src, [&](std::exception_ptr) { done = true; }));
  arc_test::run_until(ctx, [&] { return done; });
  EXPECT_TRUE(seen.in_task);
  EXPECT_EQ(seen.ec, asio::error::operation_aborted);
  EXPECT_EQ(seen.reason.message(), "before start");
}

TEST(co_spawn, later_requests_are_counted_by_the_task)
{
  asio::io_context ctx;
  arc::cancel_source src;
  observation seen;
  bool done = false;
  arc::co_spawn(ctx, wait_forever(seen), arc::bind_cancel(src, [&](std::exception_ptr) { done = true; }));
  asio::post(ctx, [&] {
    src.cancel(arc::reason::user("one"));
    src.cancel(arc::reason::user("two"));
  });
  arc_test::run_until(ctx, [&] { return done; });
  EXPECT_EQ(seen.reason.message(), "one");
  EXPECT_EQ(seen.requests, 2u);
}

TEST(co_spawn, delivers_the_result_with_a_callback)
{
  asio::io_context ctx;
  int got = 0;
  arc::co_spawn(ctx, answer(), [&](std::exception_ptr e, int v) {
    EXPECT_FALSE(e);
    got = v;
  });
  ctx.run();
  EXPECT_EQ(got, 42);
}

TEST(co_spawn, delivers_the_result_with_use_awaitable_deferred_future_as_tuple_and_promise)
{
  asio::io_context ctx;
  int a = 0, d = 0, t = 0, p = 0;
  arc_test::run_task(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    a = co_await arc::co_spawn(ex, answer(), asio::use_awaitable);
    d = co_await arc::co_spawn(ex, answer(), asio::deferred)(asio::use_awaitable);
    auto [e, v] = co_await arc::co_spawn(ex, answer(), asio::as_tuple(asio::use_awaitable));
    EXPECT_FALSE(e);
    t = v;
    auto prom = arc::co_spawn(ex, answer(), asio::experimental::use_promise);
    p = co_await prom(asio::use_awaitable);
  }());
  EXPECT_EQ(a, 42);
  EXPECT_EQ(d, 42);
  EXPECT_EQ(t, 42);
  EXPECT_EQ(p, 42);

  std::future<int> f = arc::co_spawn(ctx, answer(), asio::use_future);
  ctx.restart();
  ctx.run();
  EXPECT_EQ(f.get(), 42);
}

TEST(co_spawn, an_exception_reaches_the_completion_handler)
{
  asio::io_context ctx;
  std::exception_ptr failure;
  arc::co_spawn(ctx, []() -> asio::awaitable<void> {
    throw std::runtime_error("boom");
    co_return;
  }(), [&](std::exception_ptr e) { failure = e; });
  ctx.run();
  ASSERT_TRUE(failure);
  EXPECT_THROW(std::rethrow_exception(failure), std::runtime_error);
}

TEST(co_spawn, accepts_a_function_returning_an_awaitable)
{
  asio::io_context ctx;
  int got = 0;
  bool in_task = false;
  arc::co_spawn(ctx, [&] {
    in_task = arc::this_task::in_task();
    return answer();
  }, [&](std::exception_ptr, int v) { got = v; });
  ctx.run();
  EXPECT_EQ(got, 42);
  EXPECT_TRUE(in_task);
}

TEST(co_spawn, detached_tasks_run_and_keep_their_own_context)
{
  asio::io_context ctx;
  int ran = 0;
  auto body = [&]() -> asio::awaitable<void> {
    EXPECT_TRUE(arc::this_task::in_task());
    EXPECT_FALSE(arc::this_task::cancelled());
    ++ran;
    co_return;
  };
  for (int i = 0; i < 3; ++i)
    arc::co_spawn(ctx, body(), asio::detached);
  ctx.run();
  EXPECT_EQ(ran, 3);
}

TEST(co_spawn, destroying_the_io_context_with_pending_tasks_leaks_nothing)
{
  auto alive = std::make_shared<int>(0);
  arc::cancel_source src;
  {
    asio::io_context ctx;
    // The frame holds a copy of `alive` (a parameter, not a capture).
    auto body = [](std::shared_ptr<int>) -> asio::awaitable<void> {
      asio::steady_timer t(co_await asio::this_coro::executor, 1h);
      co_await t.async_wait(asio::use_awaitable);
    };
    for (int i = 0; i < 10; ++i)
      arc::co_spawn(ctx, body(alive), arc::bind_cancel(src, asio::detached));
  }
  EXPECT_EQ(alive.use_count(), 1);
  src.cancel(arc::reason::user("after the context is gone"));
}

TEST(co_spawn, tasks_on_a_thread_pool_are_cancelled_from_a_foreign_thread_exactly_once)
{
  asio::thread_pool pool(4);
  arc::cancel_source src;
  constexpr int n = 500;
  std::atomic<int> completions{0}, saw_reason{0};
  auto body = [&]() -> asio::awaitable<void> {
    asio::steady_timer t(co_await asio::this_coro::executor, 1h);
    try
    {
      co_await t.async_wait(asio::use_awaitable);
    }
    catch (const boost::system::system_error&)
    {
      if (arc::this_task::reason().message() == "pool")
        ++saw_reason;
    }
  };
  for (int i = 0; i < n; ++i)
    arc::co_spawn(asio::make_strand(pool), body(), arc::bind_cancel(src, [&](std::exception_ptr) { ++completions; }));
  src.cancel(arc::reason::user("pool"));
  pool.join();
  EXPECT_EQ(completions.load(), n);
  EXPECT_EQ(saw_reason.load(), n);
}

// Boost 1.81's co_spawn entry point awaits outside its try block once the
// body returns; a cancellation made by the body itself must not escape run().
TEST(co_spawn, a_task_that_cancels_itself_and_returns_at_once_completes_normally)
{
  asio::io_context ctx;
  bool done = false;
  std::exception_ptr failure;
  arc::co_spawn(ctx, []() -> asio::awaitable<void> {
    arc::this_task::source().cancel(arc::reason::user("self, then return"));
    co_return;
  }(), [&](std::exception_ptr e) {
    failure = e;
    done = true;
  });
  EXPECT_NO_THROW(ctx.run());
  EXPECT_TRUE(done);
  EXPECT_FALSE(failure);
}

TEST(co_spawn, a_task_cancelled_before_it_runs_from_a_foreign_thread_does_not_escape_run)
{
  asio::io_context ctx;
  arc::cancel_source src;
  bool done = false;
  arc::co_spawn(ctx, []() -> asio::awaitable<void> { co_return; }(),
      arc::bind_cancel(src, [&](std::exception_ptr) { done = true; }));
  std::thread([&] { src.cancel(arc::reason::user("early")); }).join();
  EXPECT_NO_THROW(ctx.run());
  EXPECT_TRUE(done);
}

// --- Regression tests: core second pass (issue 5) ---

namespace {

// True if @p e holds a cancellation: a system_error whose code means
// operation_canceled.
bool is_cancellation(const std::exception_ptr& e)
{
  if (!e)
    return false;
  try
  {
    std::rethrow_exception(e);
  }
  catch (const boost::system::system_error& se)
  {
    return se.code() == boost::system::errc::operation_canceled;
  }
  catch (...)
  {
    return false;
  }
}

// True if @p r is the request @p R itself, or R one hop down (parent of R).
bool names_request(const arc::cancel_reason& r, const arc::cancel_reason& R)
{
  return r == R || (r.kind() == arc::reason_kind::parent && r.cause() == R);
}

// Stop a pool whose tasks did not all complete, so that join() returns.
void finish_pool(asio::thread_pool& pool, bool all_completed)
{
  if (!all_completed)
    pool.stop();
  pool.join();
}

} // namespace

// Defect 2: a task that has not run yet gets terminal then partial.
TEST(co_spawn, a_terminal_request_before_the_task_runs_is_not_undone_by_a_later_partial_one)
{
  for (bool from_inside_run : {false, true})
  {
    SCOPED_TRACE(from_inside_run ? "spawned and cancelled inside a handler" : "cancelled before run()");
    asio::io_context ctx;
    arc::cancel_source src;
    observation seen;
    bool done = false;
    std::exception_ptr failure;
    const auto r1 = arc::reason::user("terminal");
    const auto r2 = arc::reason::user("partial");
    auto spawn_and_cancel = [&] {
      arc::co_spawn(ctx, wait_forever(seen), arc::bind_cancel(src, [&](std::exception_ptr e) {
        failure = e;
        done = true;
      }));
      src.cancel(r1, asio::cancellation_type::terminal);
      src.cancel(r2, asio::cancellation_type::partial);
    };
    if (from_inside_run)
      asio::post(ctx, spawn_and_cancel); // the requests reach the task inline, before its first run
    else
      spawn_and_cancel();
    arc_test::run_until(ctx, [&] { return done; });
    EXPECT_TRUE(is_cancellation(failure));
    EXPECT_EQ(seen.ec, asio::error::operation_aborted);
    EXPECT_EQ(seen.reason, r1);
  }
}

// Defect 15: the same on a running task; posted in one handler.
namespace {

struct running_task_case
{
  asio::io_context ctx;
  arc::cancel_source src;
  bool started = false, done = false, finished_normally = false;
  error_code wait_ec;
  std::exception_ptr failure;

  // Waits; then awaits once more, which throws if the task is cancelled
  // (terminal); returns normally otherwise.
  asio::awaitable<void> body()
  {
    asio::steady_timer t(co_await asio::this_coro::executor, 1h);
    started = true;
    auto [ec] = co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
    wait_ec = ec;
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
    finished_normally = true;
  }

  void run(std::function<void()> cancel)
  {
    arc::co_spawn(ctx, body(), arc::bind_cancel(src, [this](std::exception_ptr e) {
      failure = e;
      done = true;
    }));
    arc_test::run_until(ctx, [&] { return started; });
    asio::post(ctx, std::move(cancel));
    arc_test::run_until(ctx, [&] { return done; });
  }
};

} // namespace

TEST(co_spawn, a_running_task_cancelled_with_terminal_ends_cancelled)
{
  // Pins the mechanism the next test relies on.
  running_task_case c;
  c.run([&] { c.src.cancel(arc::reason::user("terminal"), asio::cancellation_type::terminal); });
  EXPECT_EQ(c.wait_ec, asio::error::operation_aborted);
  EXPECT_FALSE(c.finished_normally);
  EXPECT_TRUE(is_cancellation(c.failure));
}

TEST(co_spawn, a_later_partial_request_does_not_undo_a_terminal_one_on_a_running_task)
{
  running_task_case c;
  const auto r1 = arc::reason::user("terminal");
  c.run([&] {
    c.src.cancel(r1, asio::cancellation_type::terminal);
    c.src.cancel(arc::reason::user("partial"), asio::cancellation_type::partial);
  });
  EXPECT_EQ(c.wait_ec, asio::error::operation_aborted);
  EXPECT_FALSE(c.finished_normally) << "the task went on as if it had not been cancelled";
  EXPECT_TRUE(is_cancellation(c.failure));
  EXPECT_EQ(c.src.reason(), r1);
}

// Defect 19, task side: a later request keeps its identity in the task.
TEST(co_spawn, each_later_request_reaches_the_task_as_itself)
{
  asio::io_context ctx;
  arc::cancel_source p;
  std::size_t requests = 0;
  std::vector<arc::cancel_reason> history;
  bool done = false;
  auto body = [&]() -> asio::awaitable<void> {
    asio::steady_timer t(co_await asio::this_coro::executor, 1h);
    try
    {
      co_await t.async_wait(asio::use_awaitable);
    }
    catch (const boost::system::system_error&)
    {
      requests = arc::this_task::requests();
      history = arc::this_task::source().history();
    }
  };
  arc::co_spawn(ctx, body(), arc::bind_cancel(p, [&](std::exception_ptr) { done = true; }));
  const auto r1 = arc::reason::user("one");
  const auto r2 = arc::reason::shutdown("two");
  asio::post(ctx, [&] {
    p.cancel(r1);
    p.cancel(r2);
  });
  arc_test::run_until(ctx, [&] { return done; });
  EXPECT_EQ(requests, 2u);
  ASSERT_EQ(history.size(), 2u);
  // Through bind_cancel the task's reasons are p's own (see
  // a_cancelled_task_sees_the_reason_tag_and_cancel_site); either way, the
  // second entry must name R2, not repeat R1.
  EXPECT_TRUE(names_request(history[0], r1)) << history[0];
  EXPECT_TRUE(names_request(history[1], r2)) << history[1];
}

// Defect 8: inside a with_timeout body, this_task::source() is the task's.
TEST(co_spawn, inside_a_with_timeout_body_this_task_source_is_the_tasks_own_source)
{
  asio::io_context ctx;
  arc::cancel_source outside, inside;
  const auto R = arc::reason::user("from inside the body");
  bool threw = false;
  arc::cancel_reason after;
  arc_test::run_task(ctx, [&]() -> asio::awaitable<void> {
    outside = arc::this_task::source();
    try
    {
      co_await arc::with_timeout(1h, [&]() -> asio::awaitable<void> {
        inside = arc::this_task::source();
        arc::this_task::source().cancel(R);
        asio::steady_timer t(co_await asio::this_coro::executor, 1h);
        co_await t.async_wait(asio::use_awaitable);
      }());
    }
    catch (const boost::system::system_error&)
    {
      threw = true;
      after = arc::this_task::reason();
    }
  }());
  EXPECT_TRUE(inside == outside) << "the body sees a source of its own, not the task's";
  EXPECT_TRUE(threw);
  EXPECT_EQ(after, R);
  EXPECT_EQ(outside.reason(), R);
}

// Defect 9: nested arc::co_spawn does not stack task executors.
namespace {

asio::awaitable<std::size_t> nest(std::size_t depth)
{
  if (depth == 0)
    co_return 0;
  const auto ex = co_await asio::this_coro::executor;
  co_return 1 + co_await arc::co_spawn(ex, nest(depth - 1), asio::use_awaitable);
}

} // namespace

TEST(co_spawn, deeply_nested_tasks_complete_without_stacking_executors)
{
  asio::io_context ctx;
  const std::size_t depth = arc_test::stress(10000);
  std::size_t got = 0;
  arc_test::run_task(ctx, [&]() -> asio::awaitable<void> {
    got = co_await nest(depth);
  }());
  EXPECT_EQ(got, depth);
}

TEST(co_spawn, an_executor_captured_in_a_task_runs_no_task_after_the_task_ended)
{
  asio::io_context ctx;
  asio::any_io_executor captured;
  arc_test::run_task(ctx, [&]() -> asio::awaitable<void> {
    captured = co_await asio::this_coro::executor;
    co_return;
  }());
  bool ran = false, in_task = true;
  asio::post(captured, [&] {
    in_task = arc::this_task::in_task();
    ran = true;
  });
  arc_test::run_until(ctx, [&] { return ran; });
  EXPECT_FALSE(in_task);
}

// Defect 4: a foreign-thread cancel of a task inside with_timeout, through the
// source it is bound to or through its own source (this_task::source()).
TEST(co_spawn_concurrency, a_task_inside_with_timeout_cancelled_from_a_foreign_thread_sees_the_reason_without_a_race)
{
  const std::size_t rounds = arc_test::stress(300);
  for (std::size_t round = 0; round < rounds; ++round)
  {
    // 0: the bound source, at once; 1: the bound source, once the body waits;
    // 2: the task's own source, as with_timeout starts the body.
    const int mode = static_cast<int>(round % 3);
    asio::io_context ctx;
    arc::cancel_source src;
    arc::cancel_source own; // written before `own_ready` is set
    std::atomic<bool> own_ready{false}, started{false}, done{false};
    arc::cancel_reason body_saw;
    std::exception_ptr outcome;
    auto task = [&]() -> asio::awaitable<void> {
      own = arc::this_task::source();
      own_ready = true;
      co_await arc::with_timeout(1h, [&]() -> asio::awaitable<void> {
        asio::steady_timer t(co_await asio::this_coro::executor, 1h);
        started = true;
        try
        {
          co_await t.async_wait(asio::use_awaitable);
        }
        catch (const boost::system::system_error&)
        {
          body_saw = arc::this_task::reason();
          throw;
        }
      }());
    };
    arc::co_spawn(ctx, task(), arc::bind_cancel(src, [&](std::exception_ptr e) {
      outcome = e;
      done = true;
    }));
    std::thread runner([&] { arc_test::run_until(ctx, [&] { return done.load(); }); });
    const auto R = arc::reason::user("from afar");
    if (mode == 1)
      arc_test::wait_until([&] { return started.load(); });
    if (mode == 2)
    {
      arc_test::wait_until([&] { return own_ready.load(); });
      // Spread the cancel over the body's start (no timing is asserted).
      for (std::size_t k = 0, spin = (round * 7919) % 20000; k < spin; ++k)
        std::atomic_signal_fence(std::memory_order_seq_cst);
      own.cancel(R);
    }
    else
      src.cancel(R);
    runner.join();
    ASSERT_TRUE(done.load()) << "mode " << mode;
    EXPECT_EQ(body_saw, R) << "mode " << mode;
    EXPECT_TRUE(is_cancellation(outcome)) << "mode " << mode;
  }
}

// Defect 12: tasks on a multi-threaded executor without a strand.
// n tasks each waiting an hour on an executor that make_executor() gives,
// bound to one source; halfway through spawning, each request is made from a
// thread of its own. Every task must end cancelled, exactly once.
template <typename MakeExecutor>
void cancel_tasks_from_foreign_threads(asio::thread_pool& pool, std::size_t n,
    MakeExecutor make_executor,
    std::vector<std::pair<arc::cancel_reason, asio::cancellation_type_t>> requests)
{
  arc::cancel_source src;
  std::vector<std::atomic<int>> calls(n);
  std::atomic<std::size_t> completions{0}, cancelled{0};
  auto body = []() -> asio::awaitable<void> {
    asio::steady_timer t(co_await asio::this_coro::executor, 1h);
    co_await t.async_wait(asio::use_awaitable);
  };
  std::vector<std::thread> cancellers;
  for (std::size_t i = 0; i < n; ++i)
  {
    arc::co_spawn(make_executor(), body(), arc::bind_cancel(src, [&, i](std::exception_ptr e) {
      ++calls[i];
      if (is_cancellation(e))
        ++cancelled;
      ++completions;
    }));
    if (i == n / 2)
      for (const auto& [why, type] : requests)
        cancellers.emplace_back([&src, why = why, type = type] { src.cancel(why, type); });
  }
  for (auto& t : cancellers)
    t.join();
  finish_pool(pool, arc_test::wait_until([&] { return completions.load() == n; }));
  EXPECT_EQ(completions.load(), n);
  EXPECT_EQ(cancelled.load(), n);
  EXPECT_EQ(src.requests(), requests.size());
  std::size_t not_once = 0;
  for (auto& c : calls)
    if (c.load() != 1)
      ++not_once;
  EXPECT_EQ(not_once, 0u);
}

TEST(co_spawn_concurrency, tasks_on_a_thread_pool_without_a_strand_are_each_cancelled_exactly_once)
{
  asio::thread_pool pool(4);
  cancel_tasks_from_foreign_threads(pool, arc_test::stress(10000),
      [&] { return pool.get_executor(); },
      {{arc::reason::user("pool"), asio::cancellation_type::terminal}});
}

// The strand path: each task on its own strand of a 4-thread pool, and a
// second, partial request racing the first: it never weakens it.
TEST(co_spawn_concurrency, tasks_on_strands_of_a_pool_are_each_cancelled_exactly_once)
{
  asio::thread_pool pool(4);
  cancel_tasks_from_foreign_threads(pool, arc_test::stress(5000),
      [&] { return asio::make_strand(pool.get_executor()); },
      {{arc::reason::user("strands"), asio::cancellation_type::terminal},
          {arc::reason::user("again"), asio::cancellation_type::partial}});
}

TEST(co_spawn_concurrency, a_task_cancelled_from_another_thread_right_after_spawn_on_a_pool_never_terminates)
{
  const std::size_t rounds = arc_test::stress(1000);
  std::size_t ok = 0;
  for (std::size_t round = 0; round < rounds; ++round)
  {
    asio::thread_pool pool(2);
    arc::cancel_source src;
    std::atomic<int> calls{0};
    std::exception_ptr failure;
    arc::co_spawn(pool.get_executor(), []() -> asio::awaitable<void> {
      asio::steady_timer t(co_await asio::this_coro::executor, 1h);
      co_await t.async_wait(asio::use_awaitable);
    }(), arc::bind_cancel(src, [&](std::exception_ptr e) {
      failure = e;
      ++calls;
    }));
    std::thread([&] { src.cancel(arc::reason::user("right after spawn")); }).join();
    const bool completed = arc_test::wait_until([&] { return calls.load() > 0; });
    finish_pool(pool, completed);
    if (!completed)
      break;
    if (calls.load() == 1 && is_cancellation(failure))
      ++ok;
  }
  EXPECT_EQ(ok, rounds);
}

// Defect 13: cancelling a parent as its cross-strand child finishes.
TEST(co_spawn_concurrency, cancelling_a_parent_as_its_child_on_another_strand_finishes_completes_it_once)
{
  const std::size_t n = arc_test::stress(10000);
  asio::thread_pool pool(4);
  std::vector<arc::cancel_source> sources(n);
  std::vector<std::atomic<bool>> child_ran(n);
  std::vector<std::atomic<int>> calls(n);
  std::atomic<std::size_t> completions{0};
  auto child = [&](std::size_t i) -> asio::awaitable<void> {
    child_ran[i] = true;
    co_return;
  };
  auto parent = [&](std::size_t i, asio::strand<asio::thread_pool::executor_type> b) -> asio::awaitable<void> {
    co_await arc::co_spawn(b, child(i), asio::use_awaitable);
  };
  std::atomic<bool> give_up{false};
  std::thread canceller([&] {
    for (std::size_t i = 0; i < n && !give_up; ++i)
    {
      while (!child_ran[i] && !give_up)
        std::this_thread::yield();
      sources[i].cancel(arc::reason::user("as the child finishes"));
    }
  });
  for (std::size_t i = 0; i < n; ++i)
    arc::co_spawn(asio::make_strand(pool), parent(i, asio::make_strand(pool)),
        arc::bind_cancel(sources[i], [&, i](std::exception_ptr) {
          ++calls[i];
          ++completions;
        }));
  const bool all = arc_test::wait_until([&] { return completions.load() == n; });
  give_up = true;
  canceller.join();
  finish_pool(pool, all);
  EXPECT_EQ(completions.load(), n);
  std::size_t not_once = 0;
  for (auto& c : calls)
    if (c.load() != 1)
      ++not_once;
  EXPECT_EQ(not_once, 0u);
}

// --- The default completion token, and the token constraints (issue 6) ---

namespace {

template <typename Token>
concept spawnable_on_a_context_with = requires(asio::io_context& ctx, Token token) {
  arc::co_spawn(ctx, std::declval<asio::awaitable<void>>(), token);
};

template <typename Token>
concept spawnable_from_a_function_with = requires(asio::io_context& ctx, Token token) {
  arc::co_spawn(ctx, []() -> asio::awaitable<int> { co_return 1; }, token);
};

static_assert(spawnable_on_a_context_with<asio::detached_t>);
static_assert(!spawnable_on_a_context_with<int>, "not a completion token");
static_assert(!spawnable_on_a_context_with<void (*)(int)>, "a handler of the wrong signature");
static_assert(spawnable_from_a_function_with<void (*)(std::exception_ptr, int)>);
static_assert(!spawnable_from_a_function_with<void (*)(std::exception_ptr)>,
    "a function returning awaitable<int> completes with (exception_ptr, int)");

} // namespace

TEST(co_spawn, without_a_token_uses_the_executors_default_completion_token)
{
  asio::io_context ctx;
  asio::detached_t::executor_with_default<asio::io_context::executor_type> ex(ctx.get_executor());
  int ran = 0;
  arc::co_spawn(ex, [&]() -> asio::awaitable<void> {
    ran += arc::this_task::in_task();
    co_return;
  });
  arc::co_spawn(ex, [](int* ran) -> asio::awaitable<void> {
    *ran += arc::this_task::in_task();
    co_return;
  }(&ran));
  ctx.run();
  EXPECT_EQ(ran, 2);
}

TEST(co_spawn, bound_to_a_moved_from_source_the_task_runs_unbound_to_its_end)
{
  asio::io_context ctx;
  arc::cancel_source a(ctx);
  arc::cancel_source b(std::move(a));
  int calls = 0;
  std::exception_ptr seen;
  bool cancelled_inside = true;
  arc::co_spawn(ctx, [&]() -> asio::awaitable<void> {
    asio::steady_timer t(co_await asio::this_coro::executor, 1ms);
    co_await t.async_wait(asio::use_awaitable);
    cancelled_inside = arc::this_task::cancelled();
  }, arc::bind_cancel(a, [&](std::exception_ptr e) {
    ++calls;
    seen = e;
  }));
  b.cancel(arc::reason::user("not a's"));
  ctx.run();
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(seen);
  EXPECT_FALSE(cancelled_inside);
}

TEST(co_spawn, a_source_cancelled_after_its_task_completed_reaches_nothing)
{
  asio::io_context ctx;
  arc::cancel_source src(ctx);
  int calls = 0;
  arc::co_spawn(ctx, []() -> asio::awaitable<int> { co_return 1; },
      arc::bind_cancel(src, [&](std::exception_ptr, int) { ++calls; }));
  ctx.run();
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(src.cancel(arc::reason::user("late")));
  ctx.restart();
  ctx.run();
  EXPECT_EQ(calls, 1);
}
