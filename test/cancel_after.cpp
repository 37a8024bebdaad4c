// Tests for arc/cancel_after.hpp: cancel_after, cancel_at and with_timeout.
#include <arc/cancel_after.hpp>

#include <arc/bind_cancel.hpp>
#include <arc/co_spawn.hpp>

#include "test_util.hpp"
#include "token_kinds.hpp"

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/connect_pair.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/system_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <memory>
#include <optional>
#include <thread>
#include <utility>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using boost::system::error_code;

namespace {

using read_sig = void(error_code, std::size_t);

static_assert(std::is_same_v<asio::completion_signature_of_t<decltype(asio::async_read(
                                 std::declval<asio::local::stream_protocol::socket&>(),
                                 asio::mutable_buffer(),
                                 arc::cancel_after(1s, asio::deferred)))>,
    read_sig>);
static_assert(std::is_same_v<asio::completion_signature_of_t<decltype(
                                 std::declval<asio::steady_timer&>().async_wait(arc::cancel_at(
                                     std::chrono::steady_clock::now(), asio::deferred)))>,
    void(error_code)>);

// A stream whose peer never writes.
struct silent_peer
{
  asio::io_context ctx;
  asio::local::stream_protocol::socket a{ctx}, b{ctx};
  char buf[16];
  silent_peer() { asio::local::connect_pair(a, b); }
};

// An operation with an I/O executor that, when cancelled, records the thread
// its cancellation handler ran on and completes with the bare
// asio::error::operation_aborted enum, not an error_code.
struct enum_completing_op
{
  using executor_type = asio::io_context::executor_type;
  executor_type ex;
  std::thread::id* cancelled_on;

  executor_type get_executor() const noexcept { return ex; }

  template <typename Handler>
  void operator()(Handler&& h) const
  {
    auto slot = asio::get_associated_cancellation_slot(h);
    auto held = std::make_shared<std::optional<std::decay_t<Handler>>>(std::forward<Handler>(h));
    slot.assign([held, ex = ex, on = cancelled_on](asio::cancellation_type_t) {
      *on = std::this_thread::get_id();
      asio::post(ex, [held] { std::move(**held)(asio::error::operation_aborted); });
    });
  }
};

template <typename Token>
auto async_enum_op(asio::io_context& ctx, std::thread::id& cancelled_on, Token&& token)
{
  return asio::async_initiate<Token, void(error_code)>(
      enum_completing_op{ctx.get_executor(), &cancelled_on}, token);
}

using arc_test::alloc_count;
using arc_test::counting_allocator;

asio::awaitable<void> sleep_for_an_hour()
{
  asio::steady_timer t(co_await asio::this_coro::executor, 1h);
  co_await t.async_wait(asio::use_awaitable);
}

asio::awaitable<int> sleep_for_an_hour_then_return_1()
{
  co_await sleep_for_an_hour();
  co_return 1;
}

// Sleeps for an hour; once cancelled, records this_task::reason() in @p saw,
// then lets the cancellation out.
asio::awaitable<void> sleep_noting_why(arc::cancel_reason* saw)
{
  try
  {
    co_await sleep_for_an_hour();
  }
  catch (const boost::system::system_error&)
  {
    *saw = arc::this_task::reason();
    throw;
  }
}

// The code and reason of the cancelled_error @p e holds; fails the test otherwise.
std::pair<error_code, arc::cancel_reason> cancelled_error_in(std::exception_ptr e)
{
  try
  {
    if (e)
      std::rethrow_exception(e);
    ADD_FAILURE() << "no exception";
  }
  catch (const arc::cancelled_error& x)
  {
    return {x.code(), x.reason()};
  }
  catch (const std::exception& x)
  {
    ADD_FAILURE() << "not a cancelled_error: " << x.what();
  }
  return {};
}

} // namespace

// R3
TEST(cancel_after, a_read_that_times_out_completes_with_timed_out_and_a_timeout_reason)
{
  silent_peer p;
  arc::cancel_source src;
  error_code result;
  arc::cancel_reason why;
  int calls = 0;
  asio::async_read(p.a, asio::buffer(p.buf),
      arc::cancel_after(50ms, arc::with_reason(src,
          [&](error_code ec, std::size_t, arc::cancel_reason r) {
            ++calls;
            result = ec;
            why = r;
          })));
  arc_test::run_until(p.ctx, [&] { return calls > 0; });
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(result, arc::error::timed_out);
  EXPECT_NE(result, asio::error::operation_aborted);
  EXPECT_TRUE(result == boost::system::errc::operation_canceled);
  EXPECT_EQ(why.kind(), arc::reason_kind::timeout);
  EXPECT_EQ(arc::to_string(why).rfind("timeout (deadline 50ms)", 0), 0u) << why;
  EXPECT_FALSE(src.cancelled()); // only the operation timed out
}

TEST(cancel_after, an_outer_cancellation_that_arrives_first_passes_through_unchanged)
{
  silent_peer p;
  arc::cancel_source src;
  error_code result;
  arc::cancel_reason why;
  int calls = 0;
  asio::async_read(p.a, asio::buffer(p.buf),
      arc::cancel_after(1h, arc::with_reason(src,
          [&](error_code ec, std::size_t, arc::cancel_reason r) {
            ++calls;
            result = ec;
            why = r;
          })));
  const auto R = arc::reason::shutdown("outer");
  asio::post(p.ctx, [&] { src.cancel(R); });
  arc_test::run_until(p.ctx, [&] { return calls > 0; });
  EXPECT_EQ(result, asio::error::operation_aborted);
  EXPECT_EQ(why, R);
}

TEST(cancel_after, an_outer_plain_slot_cancellation_passes_through_as_operation_aborted)
{
  asio::io_context ctx;
  asio::steady_timer t(ctx, 1h);
  asio::cancellation_signal outer;
  error_code result;
  t.async_wait(arc::cancel_after(1h, asio::bind_cancellation_slot(outer.slot(),
      [&](error_code ec) { result = ec; })));
  asio::post(ctx, [&] { outer.emit(asio::cancellation_type::terminal); });
  ctx.run();
  EXPECT_EQ(result, asio::error::operation_aborted);
}

TEST(cancel_after, an_operation_that_finishes_in_time_is_untouched_and_leaves_no_work)
{
  asio::io_context ctx;
  asio::steady_timer t(ctx, 0ms);
  int calls = 0;
  error_code result = asio::error::would_block;
  t.async_wait(arc::cancel_after(1h, [&](error_code ec) {
    ++calls;
    result = ec;
  }));
  ctx.run(); // returns: the 1 h timer was cancelled when the wait completed
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(result);
}

TEST(cancel_after, a_given_reason_is_used_for_the_timeout)
{
  asio::io_context ctx;
  asio::steady_timer t(ctx, 1h);
  arc::cancel_source src;
  const auto mine = arc::reason::timeout(10ms, 99);
  arc::cancel_reason why;
  error_code result;
  t.async_wait(arc::cancel_after(10ms, mine,
      arc::with_reason(src, [&](error_code ec, arc::cancel_reason r) {
        result = ec;
        why = r;
      })));
  ctx.run();
  EXPECT_EQ(result, arc::error::timed_out);
  EXPECT_EQ(why, mine);
  ASSERT_NE(why.tag<int>(), nullptr);
  EXPECT_EQ(*why.tag<int>(), 99);
}

TEST(cancel_at, cancels_at_a_steady_time_point)
{
  asio::io_context ctx;
  asio::steady_timer t(ctx, 1h);
  error_code result;
  t.async_wait(arc::cancel_at(std::chrono::steady_clock::now() + 10ms,
      [&](error_code ec) { result = ec; }));
  ctx.run();
  EXPECT_EQ(result, arc::error::timed_out);
}

TEST(cancel_at, cancels_at_a_system_clock_time_point)
{
  asio::io_context ctx;
  asio::steady_timer t(ctx, 1h);
  error_code result;
  arc::cancel_source src;
  arc::cancel_reason why;
  t.async_wait(arc::cancel_at(std::chrono::system_clock::now() + 10ms,
      arc::with_reason(src, [&](error_code ec, arc::cancel_reason r) {
        result = ec;
        why = r;
      })));
  ctx.run();
  EXPECT_EQ(result, arc::error::timed_out);
  EXPECT_EQ(why.kind(), arc::reason_kind::timeout);
}

// Every token kind (test/token_kinds.hpp).
namespace {

struct cancel_after_adapter
{
  static constexpr bool appends_reason = false;
  template <typename Token>
  auto operator()(arc_test::token_fixture&, Token&& token) const
  {
    return arc::cancel_after(5ms, std::forward<Token>(token));
  }
};

// cancel_after(d, type, token) with a partial type: a timer wait honours it.
struct cancel_after_type_adapter
{
  static constexpr bool appends_reason = false;
  template <typename Token>
  auto operator()(arc_test::token_fixture&, Token&& token) const
  {
    return arc::cancel_after(5ms, asio::cancellation_type::partial, std::forward<Token>(token));
  }
};

// cancel_after(timer, d, token): the caller's timer.
struct cancel_after_timer_adapter
{
  static constexpr bool appends_reason = false;
  asio::steady_timer* timer;
  template <typename Token>
  auto operator()(arc_test::token_fixture&, Token&& token) const
  {
    return arc::cancel_after(*timer, 5ms, std::forward<Token>(token));
  }
};

// cancel_after(d)(token): the partial form, applied.
struct partial_cancel_after_adapter
{
  static constexpr bool appends_reason = false;
  template <typename Token>
  auto operator()(arc_test::token_fixture&, Token&& token) const
  {
    return arc::cancel_after(5ms)(std::forward<Token>(token));
  }
};

template <typename Kind>
class cancel_after_token : public ::testing::Test
{
protected:
  arc_test::token_fixture f; // its timer waits 1 h: only the timeout ends it
  asio::steady_timer own_timer{f.ctx};
};

} // namespace

TYPED_TEST_SUITE(cancel_after_token, arc_test::all_token_kinds, arc_test::token_kind_name);

TYPED_TEST(cancel_after_token, an_operation_past_its_timeout_completes_with_timed_out)
{
  const auto got = TypeParam::run(this->f, cancel_after_adapter{}, [] {});
  EXPECT_EQ(got.calls, 1);
  EXPECT_EQ(got.ec, arc::error::timed_out);
  EXPECT_EQ(got.ec, boost::system::errc::operation_canceled);
}

TYPED_TEST(cancel_after_token, a_partial_cancellation_type_on_expiry_times_out_a_timer_wait)
{
  const auto got = TypeParam::run(this->f, cancel_after_type_adapter{}, [] {});
  EXPECT_EQ(got.calls, 1);
  EXPECT_EQ(got.ec, arc::error::timed_out);
}

TYPED_TEST(cancel_after_token, the_callers_timer_times_the_operation)
{
  const auto before = std::chrono::steady_clock::now();
  const auto got = TypeParam::run(this->f, cancel_after_timer_adapter{&this->own_timer}, [] {});
  EXPECT_EQ(got.calls, 1);
  EXPECT_EQ(got.ec, arc::error::timed_out);
  EXPECT_GE(this->own_timer.expiry(), before + 5ms) << "the caller's timer was not the one armed";
}

TYPED_TEST(cancel_after_token, the_partial_form_applied_to_a_token_is_cancel_after)
{
  const auto got = TypeParam::run(this->f, partial_cancel_after_adapter{}, [] {});
  EXPECT_EQ(got.calls, 1);
  EXPECT_EQ(got.ec, arc::error::timed_out);
}

TEST(with_timeout, a_body_past_its_deadline_is_cancelled_and_reported_as_timed_out)
{
  asio::io_context ctx;
  arc::cancel_reason body_saw;
  arc::cancel_reason thrown_reason;
  error_code thrown_code;
  arc_test::run_task(ctx, [&]() -> asio::awaitable<void> {
    try
    {
      co_await arc::with_timeout(20ms, sleep_noting_why(&body_saw));
    }
    catch (const arc::cancelled_error& e)
    {
      thrown_code = e.code();
      thrown_reason = e.reason();
    }
  }());
  EXPECT_EQ(body_saw.kind(), arc::reason_kind::timeout);
  EXPECT_EQ(thrown_code, arc::error::timed_out);
  EXPECT_EQ(thrown_reason, body_saw);
  EXPECT_EQ(arc::to_string(thrown_reason).rfind("timeout (deadline 20ms)", 0), 0u) << thrown_reason;
}

// R4
TEST(with_timeout, an_outer_cancellation_reaches_the_body_as_itself_and_is_not_made_a_timeout)
{
  asio::io_context ctx;
  arc::cancel_source src;
  arc::cancel_reason body_saw;
  std::exception_ptr outcome;
  bool done = false;
  auto outer = [&]() -> asio::awaitable<void> {
    co_await arc::with_timeout(1s, sleep_noting_why(&body_saw));
  };
  arc::co_spawn(ctx, outer(), arc::bind_cancel(src, [&](std::exception_ptr e) {
    outcome = e;
    done = true;
  }));
  const auto R = arc::reason::user("R");
  asio::steady_timer later(ctx, 10ms);
  later.async_wait([&](error_code) { src.cancel(R); });
  arc_test::run_until(ctx, [&] { return done; });

  EXPECT_EQ(body_saw, R);
  ASSERT_TRUE(outcome);
  try
  {
    std::rethrow_exception(outcome);
  }
  catch (const arc::cancelled_error& e)
  {
    // The task completes with its own reason (issue 6); with_timeout did not
    // claim it as its timeout.
    EXPECT_EQ(e.reason(), R);
    EXPECT_EQ(e.code(), arc::error::cancelled);
  }
  catch (...)
  {
    FAIL() << "a cancelled task completes with arc::cancelled_error";
  }
}

TEST(with_timeout, returns_the_bodys_value_when_it_finishes_in_time)
{
  asio::io_context ctx;
  int got = 0;
  arc_test::run_task(ctx, [&]() -> asio::awaitable<void> {
    got = co_await arc::with_timeout(1h, []() -> asio::awaitable<int> { co_return 7; }());
  }());
  EXPECT_EQ(got, 7);
}

TEST(with_timeout, a_body_failure_other_than_cancellation_is_rethrown_as_is)
{
  asio::io_context ctx;
  EXPECT_THROW(arc_test::run_task(ctx, []() -> asio::awaitable<void> {
    co_await arc::with_timeout(1h, []() -> asio::awaitable<void> {
      throw std::logic_error("not a timeout");
      co_return;
    }());
  }()),
      std::logic_error);
}

TEST(with_timeout, works_outside_an_arc_task)
{
  asio::io_context ctx;
  error_code code;
  bool done = false;
  asio::co_spawn(ctx, [&]() -> asio::awaitable<void> {
    try
    {
      co_await arc::with_timeout(5ms, sleep_for_an_hour());
    }
    catch (const arc::cancelled_error& e)
    {
      code = e.code();
    }
    done = true;
  }, asio::detached);
  arc_test::run_until(ctx, [&] { return done; });
  EXPECT_EQ(code, arc::error::timed_out);
}

TEST(with_timeout, an_enclosing_timeout_is_converted_by_the_enclosing_with_timeout_only)
{
  asio::io_context ctx;
  arc::cancel_reason inner_saw;
  error_code outer_code;
  arc::cancel_reason outer_reason, body_saw;
  arc_test::run_task(ctx, [&]() -> asio::awaitable<void> {
    try
    {
      co_await arc::with_timeout(10ms, [&]() -> asio::awaitable<void> {
        try
        {
          co_await arc::with_timeout(1h, sleep_noting_why(&body_saw));
        }
        catch (const arc::cancelled_error& e)
        {
          inner_saw = e.reason(); // passed through, not claimed as the inner timeout
          throw;
        }
      }());
    }
    catch (const arc::cancelled_error& e)
    {
      outer_code = e.code();
      outer_reason = e.reason();
    }
  }());
  EXPECT_EQ(inner_saw, outer_reason);
  EXPECT_EQ(outer_code, arc::error::timed_out);
  EXPECT_EQ(body_saw, outer_reason);
  EXPECT_EQ(arc::to_string(outer_reason).rfind("timeout (deadline 10ms)", 0), 0u) << outer_reason;
}

// Defect 7
TEST(cancel_after, a_nested_timeout_that_fires_first_reaches_with_reason)
{
  asio::io_context ctx;
  asio::steady_timer t(ctx, 1h);
  arc::cancel_source src;
  error_code result;
  arc::cancel_reason why;
  t.async_wait(arc::cancel_after(1ms, arc::cancel_after(1000h,
      arc::with_reason(src, [&](error_code ec, arc::cancel_reason r) {
        result = ec;
        why = r;
      }))));
  ctx.run();
  EXPECT_EQ(result, arc::error::timed_out);
  EXPECT_EQ(why.kind(), arc::reason_kind::timeout);
  EXPECT_EQ(arc::to_string(why).rfind("timeout (deadline 1ms)", 0), 0u) << why;
}

TEST(cancel_after, a_nested_timeout_that_fires_first_inside_reaches_with_reason)
{
  asio::io_context ctx;
  asio::steady_timer t(ctx, 1h);
  arc::cancel_source src;
  error_code result;
  arc::cancel_reason why;
  t.async_wait(arc::cancel_after(1000h, arc::cancel_after(1ms,
      arc::with_reason(src, [&](error_code ec, arc::cancel_reason r) {
        result = ec;
        why = r;
      }))));
  ctx.run();
  EXPECT_EQ(result, arc::error::timed_out);
  EXPECT_EQ(arc::to_string(why).rfind("timeout (deadline 1ms)", 0), 0u) << why;
}

// Defect 10
TEST(cancel_after, a_completion_with_the_operation_aborted_enum_is_converted_by_signature)
{
  asio::io_context ctx;
  std::thread::id cancelled_on;
  error_code result;
  async_enum_op(ctx, cancelled_on, arc::cancel_after(5ms, [&](error_code ec) { result = ec; }));
  ctx.run();
  EXPECT_EQ(result, arc::error::timed_out);
}

TEST(cancel_after, a_timed_out_asio_co_spawn_completes_with_a_cancelled_error)
{
  asio::io_context ctx;
  std::exception_ptr got;
  bool done = false;
  asio::co_spawn(ctx, sleep_for_an_hour(), arc::cancel_after(10ms, [&](std::exception_ptr e) {
    got = e;
    done = true;
  }));
  arc_test::run_until(ctx, [&] { return done; });
  auto [code, why] = cancelled_error_in(got);
  EXPECT_EQ(code, arc::error::timed_out);
  EXPECT_EQ(arc::to_string(why).rfind("timeout (deadline 10ms)", 0), 0u) << why;
}

TEST(cancel_after, a_timed_out_asio_co_spawn_with_a_value_completes_with_a_cancelled_error)
{
  asio::io_context ctx;
  std::exception_ptr got;
  bool done = false;
  asio::co_spawn(ctx, sleep_for_an_hour_then_return_1(),
      arc::cancel_after(10ms, [&](std::exception_ptr e, int) {
        got = e;
        done = true;
      }));
  arc_test::run_until(ctx, [&] { return done; });
  EXPECT_EQ(cancelled_error_in(got).first, arc::error::timed_out);
}

TEST(cancel_after, a_timed_out_arc_co_spawn_completes_with_a_cancelled_error_and_the_reason)
{
  asio::io_context ctx;
  std::exception_ptr got;
  arc::cancel_reason task_saw;
  bool done = false;
  // A named lambda: the coroutine refers to its captures after the call.
  auto body = [&]() -> asio::awaitable<void> {
    try
    {
      co_await sleep_for_an_hour();
    }
    catch (const boost::system::system_error&)
    {
      task_saw = arc::this_task::reason();
      throw;
    }
  };
  arc::co_spawn(ctx, body(), arc::cancel_after(10ms, [&](std::exception_ptr e) {
    got = e;
    done = true;
  }));
  arc_test::run_until(ctx, [&] { return done; });
  auto [code, why] = cancelled_error_in(got);
  EXPECT_EQ(code, arc::error::timed_out);
  EXPECT_EQ(why.kind(), arc::reason_kind::timeout);
  EXPECT_EQ(task_saw, why);
}

TEST(cancel_after, an_exception_other_than_a_cancellation_is_not_converted)
{
  asio::io_context ctx;
  std::exception_ptr got;
  asio::co_spawn(ctx, []() -> asio::awaitable<void> {
    try
    {
      co_await sleep_for_an_hour();
    }
    catch (const boost::system::system_error&)
    {
      throw std::logic_error("cleanup failed");
    }
  }(), arc::cancel_after(5ms, [&](std::exception_ptr e) { got = e; }));
  ctx.run();
  EXPECT_THROW(std::rethrow_exception(got), std::logic_error);
}

// Defect 5
TEST(cancel_after, the_timer_runs_on_the_io_executor_even_when_the_handler_has_another)
{
  asio::io_context ctx;
  std::thread::id cancelled_on;
  // use_future's handler has an associated executor of its own; the timer
  // must not run on the system context's threads because of it.
  std::future<void> f = async_enum_op(ctx, cancelled_on, arc::cancel_after(5ms, asio::use_future));
  arc_test::run_until(ctx, [&] { return f.wait_for(0s) == std::future_status::ready; });
  EXPECT_EQ(cancelled_on, std::this_thread::get_id());
  try
  {
    f.get();
    FAIL() << "the future should hold the timeout";
  }
  catch (const boost::system::system_error& e)
  {
    EXPECT_EQ(e.code(), arc::error::timed_out);
  }
}

TEST(cancel_after, allocates_through_the_handlers_allocator_and_frees_before_the_handler_runs)
{
  asio::io_context ctx;
  asio::steady_timer t(ctx, 1h);
  alloc_count count;
  int live_in_handler = -1;
  error_code result;
  t.async_wait(arc::cancel_after(5ms, asio::bind_allocator(counting_allocator<void>(&count),
      [&](error_code ec) {
        result = ec;
        live_in_handler = count.live;
      })));
  ctx.run();
  EXPECT_EQ(result, arc::error::timed_out);
  EXPECT_GT(count.allocations, 0);
  EXPECT_EQ(live_in_handler, 0);
  EXPECT_EQ(count.live, 0);
}

TEST(cancel_after, an_operation_that_finishes_first_frees_everything_before_its_handler_runs)
{
  asio::io_context ctx;
  asio::steady_timer t(ctx, 1ms);
  alloc_count count;
  int live_in_handler = -1;
  error_code result = asio::error::would_block;
  t.async_wait(arc::cancel_after(1h, asio::bind_allocator(counting_allocator<void>(&count),
      [&](error_code ec) {
        result = ec;
        live_in_handler = count.live;
      })));
  ctx.run();
  EXPECT_FALSE(result);
  EXPECT_EQ(live_in_handler, 0);
  EXPECT_EQ(count.live, 0);
}

// --- with_timeout_at (issue 6) ---

TEST(with_timeout_at, a_body_past_its_deadline_is_reported_as_timed_out)
{
  asio::io_context ctx;
  const auto due = std::chrono::steady_clock::now() + 20ms;
  error_code code;
  arc::cancel_reason reason, body_saw;
  arc_test::run_task(ctx, [&]() -> asio::awaitable<void> {
    try
    {
      co_await arc::with_timeout_at(due, sleep_noting_why(&body_saw));
    }
    catch (const arc::cancelled_error& e)
    {
      code = e.code();
      reason = e.reason();
    }
  }());
  EXPECT_EQ(code, arc::error::timed_out);
  EXPECT_EQ(reason.kind(), arc::reason_kind::timeout);
  EXPECT_EQ(reason.deadline(), due);
  EXPECT_EQ(reason, body_saw);
  EXPECT_GE(std::chrono::steady_clock::now(), due);
}

TEST(with_timeout_at, returns_the_bodys_value_when_it_finishes_in_time)
{
  asio::io_context ctx;
  int got = 0;
  arc_test::run_task(ctx, [&]() -> asio::awaitable<void> {
    got = co_await arc::with_timeout_at(std::chrono::steady_clock::now() + 1h,
        []() -> asio::awaitable<int> { co_return 9; }());
  }());
  EXPECT_EQ(got, 9);
}

TEST(with_timeout_at, a_deadline_already_past_cancels_the_body_at_its_first_wait)
{
  asio::io_context ctx;
  error_code code;
  arc_test::run_task(ctx, [&]() -> asio::awaitable<void> {
    try
    {
      co_await arc::with_timeout_at(std::chrono::steady_clock::now() - 1s,
          sleep_for_an_hour());
    }
    catch (const arc::cancelled_error& e)
    {
      code = e.code();
    }
  }());
  EXPECT_EQ(code, arc::error::timed_out);
}

// --- cancel_after: the type, the caller's timer, the partial form (issue 6) ---

namespace {

static_assert(std::is_same_v<decltype(arc::cancel_after(1s)), arc::partial_cancel_after>);
static_assert(std::is_same_v<decltype(arc::cancel_after(1s, asio::cancellation_type::partial)),
    arc::partial_cancel_after>);
static_assert(std::is_same_v<decltype(std::declval<asio::steady_timer&>().async_wait(
                                 arc::cancel_after(1s, asio::cancellation_type::total,
                                     asio::use_awaitable))),
    asio::awaitable<void>>);
static_assert(std::is_same_v<decltype(std::declval<asio::steady_timer&>().async_wait(arc::cancel_after(
                                 std::declval<asio::steady_timer&>(), 1s, asio::use_awaitable))),
    asio::awaitable<void>>);

// An operation that records the type its slot was emitted with, and
// completes with operation_aborted then.
template <typename Token>
auto async_record_type(asio::io_context& ctx, asio::cancellation_type_t* seen, Token&& token)
{
  return asio::async_initiate<Token, void(error_code)>(
      [&ctx, seen](auto handler) {
        auto slot = asio::get_associated_cancellation_slot(handler);
        auto h = std::make_shared<std::optional<decltype(handler)>>(std::move(handler));
        slot.assign([&ctx, seen, h](asio::cancellation_type_t t) {
          *seen = t;
          if (*h)
          {
            auto done = std::move(**h);
            h->reset();
            asio::post(ctx, [done = std::move(done)]() mutable { std::move(done)(asio::error::operation_aborted); });
          }
        });
      },
      token);
}

} // namespace

TEST(cancel_after, the_cancellation_type_given_is_the_one_emitted_on_expiry)
{
  asio::io_context ctx;
  asio::cancellation_type_t seen = asio::cancellation_type::none;
  error_code ec;
  async_record_type(ctx, &seen,
      arc::cancel_after(5ms, asio::cancellation_type::partial,
          asio::bind_executor(ctx, [&](error_code e) { ec = e; })));
  ctx.run();
  EXPECT_EQ(seen, asio::cancellation_type::partial);
  EXPECT_EQ(ec, arc::error::timed_out);
}

TEST(cancel_after, the_partial_form_adapts_the_executors_default_token)
{
  asio::io_context ctx;
  error_code code;
  arc_test::run_task(ctx, [&]() -> asio::awaitable<void> {
    auto timer = asio::use_awaitable.as_default_on(
        asio::steady_timer(co_await asio::this_coro::executor, 1h));
    try
    {
      co_await timer.async_wait(arc::cancel_after(5ms));
    }
    catch (const boost::system::system_error& e)
    {
      code = e.code();
    }
  }());
  EXPECT_EQ(code, arc::error::timed_out);
}

TEST(cancel_after, the_callers_timer_is_left_alone_when_the_operation_finishes_first)
{
  asio::io_context ctx;
  asio::steady_timer own(ctx);
  asio::steady_timer op(ctx, 1ms);
  error_code ec = asio::error::would_block;
  op.async_wait(arc::cancel_after(own, 1h, [&](error_code e) { ec = e; }));
  const auto start = std::chrono::steady_clock::now();
  ctx.run(); // the caller's timer is cancelled once the operation is done
  EXPECT_FALSE(ec);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
}

TEST(cancel_after, the_partial_form_on_a_plain_executor_is_deferred)
{
  asio::io_context ctx;
  asio::steady_timer timer(ctx, 1h);
  error_code ec;
  int calls = 0;
  auto op = timer.async_wait(arc::cancel_after(5ms)); // nothing starts yet
  EXPECT_EQ(ctx.poll(), 0u);
  ctx.restart();
  std::move(op)([&](error_code e) {
    ++calls;
    ec = e;
  });
  ctx.run();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(ec, arc::error::timed_out);
}
