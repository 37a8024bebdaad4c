// Tests for arc/bind_cancel.hpp: bind_cancel and with_reason with every token kind.
#include <arc/bind_cancel.hpp>

#include <arc/co_spawn.hpp>
#include <arc/error.hpp>

#include "test_util.hpp"

// On Boost 1.81 promise.hpp must come before use_promise.hpp.
#include <boost/asio/experimental/promise.hpp>
#include <boost/asio/experimental/use_promise.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <memory>
#include <thread>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using boost::system::error_code;

namespace {

using wait_sig = void(error_code);
using reason_sig = void(error_code, arc::cancel_reason);

// Completion signatures, checked at compile time.
template <typename Token>
using wait_signature_t = asio::completion_signature_of_t<
    decltype(std::declval<asio::steady_timer&>().async_wait(std::declval<Token>()))>;

static_assert(std::is_same_v<wait_signature_t<arc::bind_cancel_t<asio::deferred_t>>, wait_sig>);
static_assert(std::is_same_v<wait_signature_t<arc::with_reason_t<asio::deferred_t>>, reason_sig>);

struct fixture
{
  asio::io_context ctx;
  arc::cancel_source src;
  asio::steady_timer timer{ctx, 1h};
  const arc::cancel_reason why = arc::reason::user("stop");

  // Cancel once the operation is pending.
  void cancel_soon()
  {
    asio::post(ctx, [this] { src.cancel(why); });
  }
};

} // namespace

TEST(bind_cancel, cancels_the_bound_operation_with_a_callback)
{
  fixture f;
  int calls = 0;
  f.timer.async_wait(arc::bind_cancel(f.src, [&](error_code ec) {
    ++calls;
    EXPECT_EQ(ec, asio::error::operation_aborted);
  }));
  f.cancel_soon();
  f.ctx.run();
  EXPECT_EQ(calls, 1);
}

TEST(bind_cancel, leaves_a_completed_operation_untouched)
{
  fixture f;
  f.timer.expires_after(0ms);
  int calls = 0;
  f.timer.async_wait(arc::bind_cancel(f.src, [&](error_code ec) {
    ++calls;
    EXPECT_FALSE(ec);
  }));
  f.ctx.run();
  f.src.cancel(f.why);
  f.ctx.restart();
  f.ctx.run();
  EXPECT_EQ(calls, 1);
}

TEST(bind_cancel, the_tokens_own_slot_still_reaches_the_operation)
{
  fixture f;
  asio::cancellation_signal own;
  int calls = 0;
  f.timer.async_wait(arc::bind_cancel(f.src,
      asio::bind_cancellation_slot(own.slot(), [&](error_code ec) {
        ++calls;
        EXPECT_EQ(ec, asio::error::operation_aborted);
      })));
  asio::post(f.ctx, [&] { own.emit(asio::cancellation_type::terminal); });
  f.ctx.run();
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(f.src.cancelled()); // only the operation was cancelled
}

TEST(bind_cancel, the_tokens_own_slot_is_released_when_the_operation_completes)
{
  fixture f;
  asio::cancellation_signal own;
  f.timer.expires_after(0ms);
  f.timer.async_wait(arc::bind_cancel(f.src, asio::bind_cancellation_slot(own.slot(), [](error_code) {})));
  f.ctx.run();
  EXPECT_FALSE(own.slot().has_handler());
}

TEST(bind_cancel, works_with_use_awaitable)
{
  fixture f;
  error_code result;
  arc_test::run_task(f.ctx, [&]() -> asio::awaitable<void> {
    f.cancel_soon();
    try
    {
      co_await f.timer.async_wait(arc::bind_cancel(f.src, asio::use_awaitable));
    }
    catch (const boost::system::system_error& e)
    {
      result = e.code();
    }
  }());
  EXPECT_EQ(result, asio::error::operation_aborted);
}

// R7: with_reason appends the reason, with every token kind.
TEST(with_reason, appends_the_reason_for_a_callback)
{
  fixture f;
  arc::cancel_reason seen;
  error_code result;
  f.timer.async_wait(arc::with_reason(f.src, [&](error_code ec, arc::cancel_reason r) {
    result = ec;
    seen = r;
  }));
  f.cancel_soon();
  f.ctx.run();
  EXPECT_EQ(result, asio::error::operation_aborted);
  EXPECT_EQ(seen, f.why);
}

TEST(with_reason, appends_an_empty_reason_when_nothing_cancelled)
{
  fixture f;
  f.timer.expires_after(0ms);
  arc::cancel_reason seen = arc::reason::user("placeholder");
  f.timer.async_wait(arc::with_reason(f.src, [&](error_code ec, arc::cancel_reason r) {
    EXPECT_FALSE(ec);
    seen = r;
  }));
  f.ctx.run();
  EXPECT_TRUE(seen.empty());
}

TEST(with_reason, appends_the_reason_for_use_awaitable)
{
  fixture f;
  arc::cancel_reason seen;
  arc_test::run_task(f.ctx, [&]() -> asio::awaitable<void> {
    f.cancel_soon();
    auto [ec, r] = co_await f.timer.async_wait(arc::with_reason(f.src, asio::as_tuple(asio::use_awaitable)));
    EXPECT_EQ(ec, asio::error::operation_aborted);
    seen = r;
  }());
  EXPECT_EQ(seen, f.why);
}

TEST(with_reason, appends_the_reason_for_deferred)
{
  fixture f;
  auto op = f.timer.async_wait(arc::with_reason(f.src, asio::deferred));
  arc::cancel_reason seen;
  std::move(op)([&](error_code ec, arc::cancel_reason r) {
    EXPECT_EQ(ec, asio::error::operation_aborted);
    seen = r;
  });
  f.cancel_soon();
  f.ctx.run();
  EXPECT_EQ(seen, f.why);
}

TEST(with_reason, appends_the_reason_for_use_future)
{
  fixture f;
  // Plain use_future turns the error into an exception, and the reason with it;
  // the packaged-task form sees every argument.
  std::future<arc::cancel_reason> fut = f.timer.async_wait(arc::with_reason(f.src,
      asio::use_future([](error_code ec, arc::cancel_reason r) {
        EXPECT_EQ(ec, asio::error::operation_aborted);
        return r;
      })));
  f.cancel_soon();
  f.ctx.run();
  EXPECT_EQ(fut.get(), f.why);

  fixture g;
  std::future<arc::cancel_reason> plain = g.timer.async_wait(arc::with_reason(g.src, asio::use_future));
  g.cancel_soon();
  g.ctx.run();
  EXPECT_THROW(plain.get(), boost::system::system_error);
}

TEST(with_reason, appends_the_reason_for_as_tuple)
{
  fixture f;
  std::tuple<error_code, arc::cancel_reason> got;
  f.timer.async_wait(arc::with_reason(f.src, asio::as_tuple([&](auto t) { got = t; })));
  f.cancel_soon();
  f.ctx.run();
  EXPECT_EQ(std::get<0>(got), asio::error::operation_aborted);
  EXPECT_EQ(std::get<1>(got), f.why);
}

TEST(with_reason, appends_the_reason_for_redirect_error)
{
  fixture f;
  error_code ec;
  arc::cancel_reason seen;
  arc_test::run_task(f.ctx, [&]() -> asio::awaitable<void> {
    f.cancel_soon();
    seen = co_await f.timer.async_wait(
        arc::with_reason(f.src, asio::redirect_error(asio::use_awaitable, ec)));
  }());
  EXPECT_EQ(ec, asio::error::operation_aborted);
  EXPECT_EQ(seen, f.why);
}

TEST(with_reason, appends_the_reason_for_use_promise)
{
  fixture f;
  auto p = f.timer.async_wait(arc::with_reason(f.src, asio::experimental::use_promise));
  f.cancel_soon();
  f.ctx.run();
  // Boost 1.81's promise moves the arguments twice when a completion is
  // already attached, so a non-trivial value would arrive moved-from; a
  // completion attached once the result is stored receives it intact.
  arc::cancel_reason seen;
  int calls = 0;
  p([&](error_code ec, arc::cancel_reason r) {
    ++calls;
    EXPECT_EQ(ec, asio::error::operation_aborted);
    seen = r;
  });
  f.ctx.restart();
  f.ctx.run();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(seen, f.why);
}

TEST(with_reason, reports_unspecified_when_the_tokens_plain_slot_cancelled)
{
  fixture f;
  asio::cancellation_signal own;
  arc::cancel_reason seen;
  f.timer.async_wait(arc::with_reason(f.src,
      asio::bind_cancellation_slot(own.slot(), [&](error_code, arc::cancel_reason r) { seen = r; })));
  asio::post(f.ctx, [&] { own.emit(asio::cancellation_type::terminal); });
  f.ctx.run();
  EXPECT_EQ(seen.kind(), arc::reason_kind::unspecified);
}

TEST(with_reason, every_cancellation_type_is_delivered)
{
  for (auto type : {asio::cancellation_type::terminal, asio::cancellation_type::partial,
           asio::cancellation_type::total})
  {
    fixture f;
    arc::cancel_reason seen;
    f.timer.async_wait(arc::with_reason(f.src, [&](error_code ec, arc::cancel_reason r) {
      EXPECT_EQ(ec, asio::error::operation_aborted);
      seen = r;
    }));
    asio::post(f.ctx, [&] { f.src.cancel(f.why, type); });
    f.ctx.run();
    EXPECT_EQ(seen, f.why);
  }
}

TEST(bind_cancel, a_destroyed_io_context_destroys_the_bound_handler_without_calling_it)
{
  int calls = 0;
  auto alive = std::make_shared<int>(0);
  arc::cancel_source src;
  {
    asio::io_context ctx;
    asio::steady_timer timer(ctx, 1h);
    timer.async_wait(arc::bind_cancel(src, [&, alive](error_code) { ++calls; }));
    ctx.run_for(1ms);
  }
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(alive.use_count(), 1); // the handler was destroyed
  src.cancel(arc::reason::user("after the context"));
}

TEST(bind_cancel, works_with_deferred)
{
  fixture f;
  auto op = f.timer.async_wait(arc::bind_cancel(f.src, asio::deferred));
  error_code result;
  std::move(op)([&](error_code ec) { result = ec; });
  f.cancel_soon();
  f.ctx.run();
  EXPECT_EQ(result, asio::error::operation_aborted);
}

TEST(bind_cancel, works_with_use_future)
{
  fixture f;
  std::future<void> fut = f.timer.async_wait(arc::bind_cancel(f.src, asio::use_future));
  f.cancel_soon();
  f.ctx.run();
  try
  {
    fut.get();
    FAIL() << "the future should hold operation_aborted";
  }
  catch (const boost::system::system_error& e)
  {
    EXPECT_EQ(e.code(), asio::error::operation_aborted);
  }
}

TEST(bind_cancel, works_with_as_tuple)
{
  fixture f;
  std::tuple<error_code> got;
  f.timer.async_wait(arc::bind_cancel(f.src, asio::as_tuple([&](std::tuple<error_code> t) { got = t; })));
  f.cancel_soon();
  f.ctx.run();
  EXPECT_EQ(std::get<0>(got), asio::error::operation_aborted);
}

TEST(bind_cancel, works_with_redirect_error)
{
  fixture f;
  error_code ec;
  arc_test::run_task(f.ctx, [&]() -> asio::awaitable<void> {
    f.cancel_soon();
    co_await f.timer.async_wait(arc::bind_cancel(f.src, asio::redirect_error(asio::use_awaitable, ec)));
  }());
  EXPECT_EQ(ec, asio::error::operation_aborted);
}

TEST(bind_cancel, works_with_use_promise)
{
  fixture f;
  auto p = f.timer.async_wait(arc::bind_cancel(f.src, asio::experimental::use_promise));
  error_code result;
  p([&](error_code ec) { result = ec; });
  f.cancel_soon();
  f.ctx.run();
  EXPECT_EQ(result, asio::error::operation_aborted);
}

// --- Regression tests: core second pass (issue 5) ---

// Defect 3: an operation's reason is not overwritten by a later, less
// specific request (the enclosing task's plain slot says `unspecified`).
TEST(with_reason, the_reason_an_operation_was_cancelled_with_is_kept_when_its_task_is_cancelled_next)
{
  asio::io_context ctx;
  arc::cancel_source fsrc, tsrc;
  const auto F = arc::reason::user("F, for the operation");
  const auto T = arc::reason::shutdown("T, for the task");
  bool started = false, reached = false, done = false;
  error_code ec_seen;
  arc::cancel_reason seen;
  auto body = [&]() -> asio::awaitable<void> {
    asio::steady_timer t(co_await asio::this_coro::executor, 1h);
    started = true;
    auto [ec, r] = co_await t.async_wait(arc::with_reason(fsrc, asio::as_tuple(asio::use_awaitable)));
    ec_seen = ec;
    seen = r;
    reached = true;
  };
  arc::co_spawn(ctx, body(), arc::bind_cancel(tsrc, [&](std::exception_ptr) { done = true; }));
  arc_test::run_until(ctx, [&] { return started; });
  asio::post(ctx, [&] {
    fsrc.cancel(F);
    tsrc.cancel(T); // before the operation's completion has run
  });
  arc_test::run_until(ctx, [&] { return done; });
  ASSERT_TRUE(reached);
  EXPECT_EQ(ec_seen, asio::error::operation_aborted);
  EXPECT_EQ(seen, F) << seen;
}

// Move-only completion handlers.
TEST(bind_cancel, a_move_only_completion_handler_works)
{
  fixture f;
  int calls = 0;
  auto owned = std::make_unique<int>(7);
  f.timer.async_wait(arc::bind_cancel(f.src, [&calls, p = std::move(owned)](error_code ec) {
    ++calls;
    EXPECT_EQ(ec, asio::error::operation_aborted);
    ASSERT_TRUE(p);
    EXPECT_EQ(*p, 7);
  }));
  f.cancel_soon();
  f.ctx.run();
  EXPECT_EQ(calls, 1);
}

TEST(with_reason, a_move_only_completion_handler_works)
{
  fixture f;
  int calls = 0;
  arc::cancel_reason seen;
  auto owned = std::make_unique<int>(7);
  f.timer.async_wait(arc::with_reason(f.src,
      [&calls, &seen, p = std::move(owned)](error_code ec, arc::cancel_reason r) {
        ++calls;
        EXPECT_EQ(ec, asio::error::operation_aborted);
        ASSERT_TRUE(p);
        EXPECT_EQ(*p, 7);
        seen = r;
      }));
  f.cancel_soon();
  f.ctx.run();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(seen, f.why);
}

// A completion handler that re-enters: it cancels its source again and
// starts a new operation bound to it, which is cancelled at once
// (level-triggered).
TEST(bind_cancel, a_completion_handler_may_cancel_again_and_start_a_new_bound_operation)
{
  fixture f;
  asio::steady_timer second(f.ctx, 1h);
  int calls = 0, second_calls = 0;
  error_code second_ec;
  arc::cancel_reason second_reason;
  const auto again = arc::reason::user("again");
  f.timer.async_wait(arc::bind_cancel(f.src, [&, p = std::make_unique<int>(1)](error_code ec) mutable {
    ++calls;
    EXPECT_EQ(ec, asio::error::operation_aborted);
    EXPECT_FALSE(f.src.cancel(again));
    second.async_wait(arc::with_reason(f.src, [&, q = std::move(p)](error_code ec2, arc::cancel_reason r) {
      EXPECT_TRUE(q);
      ++second_calls;
      second_ec = ec2;
      second_reason = r;
    }));
  }));
  f.cancel_soon();
  arc_test::run_until(f.ctx, [&] { return second_calls > 0; });
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(second_calls, 1);
  EXPECT_EQ(second_ec, asio::error::operation_aborted);
  EXPECT_EQ(second_reason, f.why);
  EXPECT_EQ(f.src.requests(), 2u);
}
