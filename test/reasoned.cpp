// Tests for arc/reasoned.hpp: arc::reasoned(token), arc::use_awaitable, and
// the reason a cancelled arc::co_spawn task completes with.
#include <arc/reasoned.hpp>

#include <arc/bind_cancel.hpp>
#include <arc/cancel_after.hpp>
#include <arc/cancel_source.hpp>
#include <arc/co_spawn.hpp>
#include <arc/error.hpp>

#include "test_util.hpp"

#include <boost/asio/append.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <exception>
#include <future>
#include <stdexcept>
#include <tuple>
#include <type_traits>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using boost::system::error_code;

namespace {

// An operation that completes, posted, with @p ec and @p value.
template <typename Token>
auto async_value(asio::io_context& ctx, error_code ec, int value, Token&& token)
{
  return asio::async_initiate<Token, void(error_code, int)>(
      [&ctx](auto handler, error_code ec, int value)
      { asio::post(ctx, asio::append(std::move(handler), ec, value)); },
      token, ec, value);
}

// What an exception_ptr held.
struct inspected
{
  bool none = false;      // no exception
  bool cancelled = false; // an arc::cancelled_error
  bool system = false;    // another system_error
  error_code code;
  arc::cancel_reason reason;
};

inspected inspect(const std::exception_ptr& e)
{
  inspected out;
  if (!e)
  {
    out.none = true;
    return out;
  }
  try
  {
    std::rethrow_exception(e);
  }
  catch (const arc::cancelled_error& x)
  {
    out.cancelled = true;
    out.code = x.code();
    out.reason = x.reason();
  }
  catch (const boost::system::system_error& x)
  {
    out.system = true;
    out.code = x.code();
  }
  catch (...)
  {
  }
  return out;
}

// --- Signatures ----------------------------------------------------------------

using op_type = decltype(std::declval<asio::steady_timer&>().async_wait(arc::use_awaitable));
static_assert(std::is_same_v<op_type, asio::awaitable<void>>,
    "arc::use_awaitable: co_await of void(error_code) yields void");
static_assert(std::is_same_v<decltype(async_value(std::declval<asio::io_context&>(), error_code(),
                                 0, arc::use_awaitable)),
                  asio::awaitable<int>>,
    "arc::use_awaitable: co_await of void(error_code, int) yields int");
static_assert(std::is_same_v<decltype(async_value(std::declval<asio::io_context&>(), error_code(),
                                 0, arc::reasoned(asio::use_future))),
                  std::future<int>>,
    "reasoned(use_future): void(error_code, int) becomes a future<int>");
static_assert(std::is_same_v<decltype(async_value(std::declval<asio::io_context&>(), error_code(),
                                 0, arc::reasoned(asio::as_tuple(asio::use_awaitable)))),
                  asio::awaitable<std::tuple<std::exception_ptr, int>>>,
    "reasoned(as_tuple(use_awaitable)): the error is an exception_ptr");
static_assert(std::is_same_v<arc::use_awaitable_t<>, std::decay_t<decltype(arc::use_awaitable)>>);

// --- Token kinds -----------------------------------------------------------------
//
// Each kind waits on a timer with the adapted token `wrap(<token>)`, posts
// the request, and returns the exception the completion reported.

struct fixture
{
  asio::io_context ctx;
  arc::cancel_source src;
  asio::steady_timer timer{ctx, 1h};
};

struct callback_kind
{
  template <typename Wrap, typename Request>
  static std::exception_ptr run(fixture& f, Wrap wrap, Request request)
  {
    int calls = 0;
    std::exception_ptr seen;
    f.timer.async_wait(wrap([&](std::exception_ptr e) {
      ++calls;
      seen = e;
    }));
    asio::post(f.ctx, request);
    arc_test::run_until(f.ctx, [&] { return calls > 0; });
    EXPECT_EQ(calls, 1);
    return seen;
  }
};

struct deferred_kind
{
  template <typename Wrap, typename Request>
  static std::exception_ptr run(fixture& f, Wrap wrap, Request request)
  {
    int calls = 0;
    std::exception_ptr seen;
    auto op = f.timer.async_wait(wrap(asio::deferred));
    std::move(op)([&](std::exception_ptr e) {
      ++calls;
      seen = e;
    });
    asio::post(f.ctx, request);
    arc_test::run_until(f.ctx, [&] { return calls > 0; });
    EXPECT_EQ(calls, 1);
    return seen;
  }
};

struct use_future_kind
{
  template <typename Wrap, typename Request>
  static std::exception_ptr run(fixture& f, Wrap wrap, Request request)
  {
    std::future<void> fut = f.timer.async_wait(wrap(asio::use_future));
    asio::post(f.ctx, request);
    arc_test::run_until(f.ctx,
        [&] { return fut.wait_for(std::chrono::seconds(0)) == std::future_status::ready; });
    try
    {
      fut.get();
    }
    catch (...)
    {
      return std::current_exception();
    }
    return nullptr;
  }
};

struct use_awaitable_kind
{
  template <typename Wrap, typename Request>
  static std::exception_ptr run(fixture& f, Wrap wrap, Request request)
  {
    std::exception_ptr seen;
    arc_test::run_task(f.ctx, [&]() -> asio::awaitable<void> {
      asio::post(f.ctx, request);
      try
      {
        co_await f.timer.async_wait(wrap(asio::use_awaitable));
      }
      catch (...)
      {
        seen = std::current_exception();
      }
    }());
    return seen;
  }
};

struct as_tuple_kind
{
  template <typename Wrap, typename Request>
  static std::exception_ptr run(fixture& f, Wrap wrap, Request request)
  {
    std::exception_ptr seen;
    arc_test::run_task(f.ctx, [&]() -> asio::awaitable<void> {
      asio::post(f.ctx, request);
      auto [e] = co_await f.timer.async_wait(wrap(asio::as_tuple(asio::use_awaitable)));
      seen = e;
    }());
    return seen;
  }
};

template <typename Kind>
class reasoned_token : public ::testing::Test
{
};

using kinds =
    ::testing::Types<callback_kind, deferred_kind, use_future_kind, use_awaitable_kind, as_tuple_kind>;
TYPED_TEST_SUITE(reasoned_token, kinds);

TYPED_TEST(reasoned_token, reasoned_outside_bind_cancel_reports_the_sources_reason)
{
  fixture f;
  const auto why = arc::reason::shutdown("draining");
  auto seen = inspect(TypeParam::run(
      f, [&](auto token) { return arc::reasoned(arc::bind_cancel(f.src, std::move(token))); },
      [&] { f.src.cancel(why); }));
  EXPECT_TRUE(seen.cancelled);
  EXPECT_EQ(seen.reason, why);
  EXPECT_EQ(seen.code, arc::error::shutdown);
  EXPECT_EQ(seen.code, boost::system::errc::operation_canceled);
}

TYPED_TEST(reasoned_token, reasoned_inside_bind_cancel_reports_the_sources_reason)
{
  fixture f;
  const auto why = arc::reason::signal(15);
  auto seen = inspect(TypeParam::run(
      f, [&](auto token) { return arc::bind_cancel(f.src, arc::reasoned(std::move(token))); },
      [&] { f.src.cancel(why); }));
  EXPECT_TRUE(seen.cancelled);
  EXPECT_EQ(seen.reason, why);
  EXPECT_EQ(seen.code, arc::error::signalled);
}

TYPED_TEST(reasoned_token, success_reports_no_exception)
{
  fixture f;
  f.timer.expires_after(0ms);
  auto seen = inspect(TypeParam::run(
      f, [&](auto token) { return arc::reasoned(arc::bind_cancel(f.src, std::move(token))); },
      [] {}));
  EXPECT_TRUE(seen.none);
}

TYPED_TEST(reasoned_token, an_abort_with_no_reason_anywhere_is_a_cancelled_error_with_asios_code)
{
  fixture f;
  auto seen = inspect(TypeParam::run(
      f, [&](auto token) { return arc::reasoned(std::move(token)); }, [&] { f.timer.cancel(); }));
  EXPECT_TRUE(seen.cancelled);
  EXPECT_FALSE(seen.reason);
  EXPECT_EQ(seen.code, asio::error::operation_aborted);
}

// --- Inside tasks ----------------------------------------------------------------

TEST(reasoned, a_cancelled_task_operation_throws_the_tasks_reason)
{
  asio::io_context ctx;
  const auto why = arc::reason::shutdown("stop");
  arc::cancel_source task_src;
  inspected seen;
  arc_test::run_task(ctx, [&]() -> asio::awaitable<void> {
    task_src = arc::this_task::source();
    asio::steady_timer timer(ctx, 1h);
    asio::post(ctx, [&] { task_src.cancel(why); });
    try
    {
      co_await timer.async_wait(arc::use_awaitable);
    }
    catch (...)
    {
      seen = inspect(std::current_exception());
    }
  }());
  EXPECT_TRUE(seen.cancelled);
  EXPECT_EQ(seen.reason, why);
  EXPECT_EQ(seen.code, arc::error::shutdown);
  EXPECT_NE(seen.code, asio::error::operation_aborted); // as documented: test errc instead
  EXPECT_EQ(seen.code, boost::system::errc::operation_canceled);
}

TEST(reasoned, inside_with_timeout_the_reason_is_the_timeout)
{
  asio::io_context ctx;
  inspected seen;
  bool outer_threw = false;
  arc_test::run_task(ctx, [&]() -> asio::awaitable<void> {
    try
    {
      co_await arc::with_timeout(5ms, [&]() -> asio::awaitable<void> {
        asio::steady_timer timer(ctx, 1h);
        try
        {
          co_await timer.async_wait(arc::use_awaitable);
        }
        catch (...)
        {
          seen = inspect(std::current_exception());
          throw;
        }
      }());
    }
    catch (const arc::cancelled_error& e)
    {
      outer_threw = e.code() == arc::error::timed_out;
    }
  }());
  EXPECT_TRUE(seen.cancelled);
  EXPECT_EQ(seen.reason.kind(), arc::reason_kind::timeout);
  EXPECT_EQ(seen.code, arc::error::timed_out);
  EXPECT_TRUE(outer_threw);
}

TEST(reasoned, cancel_afters_timed_out_is_kept_as_the_code)
{
  asio::io_context ctx;
  inspected seen;
  arc_test::run_task(ctx, [&]() -> asio::awaitable<void> {
    asio::steady_timer timer(ctx, 1h);
    try
    {
      co_await timer.async_wait(arc::cancel_after(5ms, arc::use_awaitable));
    }
    catch (...)
    {
      seen = inspect(std::current_exception());
    }
  }());
  EXPECT_TRUE(seen.cancelled);
  EXPECT_EQ(seen.code, arc::error::timed_out);
}

TEST(reasoned, values_pass_through_and_other_errors_are_system_errors)
{
  asio::io_context ctx;
  int got = 0;
  inspected failure;
  arc_test::run_task(ctx, [&]() -> asio::awaitable<void> {
    got = co_await async_value(ctx, error_code(), 42, arc::use_awaitable);
    try
    {
      co_await async_value(ctx, asio::error::eof, 7, arc::use_awaitable);
    }
    catch (...)
    {
      failure = inspect(std::current_exception());
    }
  }());
  EXPECT_EQ(got, 42);
  EXPECT_TRUE(failure.system);
  EXPECT_FALSE(failure.cancelled);
  EXPECT_EQ(failure.code, asio::error::eof);
}

TEST(reasoned, a_callback_gets_the_exception_and_the_value)
{
  asio::io_context ctx;
  int calls = 0;
  int got = 0;
  inspected seen;
  async_value(ctx, asio::error::eof, 7, arc::reasoned([&](std::exception_ptr e, int v) {
    ++calls;
    got = v;
    seen = inspect(e);
  }));
  ctx.run();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(got, 7);
  EXPECT_TRUE(seen.system);
  EXPECT_EQ(seen.code, asio::error::eof);
}

TEST(reasoned, a_cancelled_task_still_reports_an_error_that_is_not_a_cancellation_as_it_is)
{
  asio::io_context ctx;
  inspected seen;
  arc_test::run_task(ctx, [&]() -> asio::awaitable<void> {
    arc::this_task::source().cancel(arc::reason::user("x"));
    try
    {
      co_await async_value(ctx, asio::error::connection_reset, 0, arc::use_awaitable);
    }
    catch (...)
    {
      seen = inspect(std::current_exception());
    }
  }());
  EXPECT_TRUE(seen.system);
  EXPECT_EQ(seen.code, asio::error::connection_reset);
}

// --- A cancelled task completes with its reason ----------------------------------------

// Spawns @p body as a task, cancels it with @p why once it has started, and
// returns the exception its completion reported.
template <typename Body>
std::exception_ptr spawn_and_cancel(asio::io_context& ctx, Body body, const arc::cancel_reason& why)
{
  arc::cancel_source src;
  int calls = 0;
  std::exception_ptr seen;
  arc::co_spawn(ctx, std::move(body), arc::bind_cancel(src, [&](std::exception_ptr e) {
    ++calls;
    seen = e;
  }));
  asio::post(ctx, [&] { src.cancel(why); });
  arc_test::run_until(ctx, [&] { return calls > 0; });
  EXPECT_EQ(calls, 1);
  return seen;
}

TEST(co_spawn_reason, a_task_that_lets_asios_abort_escape_completes_with_its_reason)
{
  asio::io_context ctx;
  const auto why = arc::reason::shutdown("bye");
  auto seen = inspect(spawn_and_cancel(ctx, [&]() -> asio::awaitable<void> {
    asio::steady_timer timer(ctx, 1h);
    co_await timer.async_wait(asio::use_awaitable); // throws system_error(operation_aborted)
  }, why));
  EXPECT_TRUE(seen.cancelled);
  EXPECT_EQ(seen.reason, why);
  EXPECT_EQ(seen.code, arc::error::shutdown);
}

TEST(co_spawn_reason, whatever_a_cancelled_task_throws_it_completes_with_its_reason)
{
  asio::io_context ctx;
  const auto why = arc::reason::user("stop");
  auto seen = inspect(spawn_and_cancel(ctx, [&]() -> asio::awaitable<void> {
    asio::steady_timer timer(ctx, 1h);
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    throw std::runtime_error("cleanup failed");
  }, why));
  EXPECT_TRUE(seen.cancelled);
  EXPECT_EQ(seen.reason, why);
  EXPECT_EQ(seen.code, arc::error::cancelled);
}

TEST(co_spawn_reason, a_cancelled_task_that_returns_normally_completes_normally_with_its_value)
{
  asio::io_context ctx;
  arc::cancel_source src;
  int calls = 0;
  std::exception_ptr seen;
  int value = 0;
  arc::co_spawn(ctx, [&]() -> asio::awaitable<int> {
    asio::steady_timer timer(ctx, 1h);
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    co_return 5;
  }, arc::bind_cancel(src, [&](std::exception_ptr e, int v) {
    ++calls;
    seen = e;
    value = v;
  }));
  asio::post(ctx, [&] { src.cancel(arc::reason::user("x")); });
  arc_test::run_until(ctx, [&] { return calls > 0; });
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(seen);
  EXPECT_EQ(value, 5);
}

TEST(co_spawn_reason, a_task_that_was_not_cancelled_completes_with_what_it_threw)
{
  asio::io_context ctx;
  int calls = 0;
  std::exception_ptr seen;
  arc::co_spawn(ctx, []() -> asio::awaitable<void> {
    throw std::runtime_error("boom");
    co_return;
  }, [&](std::exception_ptr e) {
    ++calls;
    seen = e;
  });
  ctx.run();
  EXPECT_EQ(calls, 1);
  ASSERT_TRUE(seen);
  EXPECT_THROW(std::rethrow_exception(seen), std::runtime_error);
}

TEST(co_spawn_reason, an_awaited_child_of_a_cancelled_task_throws_parent_cancelled)
{
  asio::io_context ctx;
  const auto why = arc::reason::shutdown("down");
  inspected seen;
  auto outer = inspect(spawn_and_cancel(ctx, [&]() -> asio::awaitable<void> {
    try
    {
      co_await arc::co_spawn(ctx, [&]() -> asio::awaitable<void> {
        asio::steady_timer timer(ctx, 1h);
        co_await timer.async_wait(asio::use_awaitable);
      }, asio::use_awaitable);
    }
    catch (...)
    {
      seen = inspect(std::current_exception());
      throw;
    }
  }, why));
  EXPECT_TRUE(seen.cancelled);
  EXPECT_EQ(seen.reason.kind(), arc::reason_kind::parent);
  EXPECT_EQ(seen.reason.cause(), why);
  EXPECT_EQ(seen.code, arc::error::parent_cancelled);
  EXPECT_TRUE(outer.cancelled);
  EXPECT_EQ(outer.reason, why);
}

} // namespace
