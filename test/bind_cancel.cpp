// Tests for arc/bind_cancel.hpp: bind_cancel and with_reason with every token kind.
#include <arc/bind_cancel.hpp>

#include <arc/co_spawn.hpp>
#include <arc/error.hpp>

#include "test_util.hpp"
#include "token_kinds.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <future>
#include <memory>
#include <utility>

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

// --- Every token kind (test/token_kinds.hpp) ---

namespace {

struct bind_cancel_adapter
{
  static constexpr bool appends_reason = false;
  template <typename Token>
  auto operator()(arc_test::token_fixture& f, Token&& token) const
  {
    return arc::bind_cancel(f.src, std::forward<Token>(token));
  }
};

// R7: with_reason appends the reason, with every token kind.
struct with_reason_adapter
{
  static constexpr bool appends_reason = true;
  template <typename Token>
  auto operator()(arc_test::token_fixture& f, Token&& token) const
  {
    return arc::with_reason(f.src, std::forward<Token>(token));
  }
};

template <typename Kind>
class token_test : public ::testing::Test
{
protected:
  arc_test::token_fixture f;
  const arc::cancel_reason why = arc::reason::user("stop");
  const arc::cancel_reason later = arc::reason::shutdown("a later request");
};

template <typename Kind>
class bind_cancel_token : public token_test<Kind>
{
};
template <typename Kind>
class bind_cancel_reentrant_token : public token_test<Kind>
{
};
template <typename Kind>
class with_reason_token : public token_test<Kind>
{
};

} // namespace

TYPED_TEST_SUITE(bind_cancel_token, arc_test::all_token_kinds, arc_test::token_kind_name);
TYPED_TEST_SUITE(bind_cancel_reentrant_token, arc_test::reentrant_token_kinds, arc_test::token_kind_name);
TYPED_TEST_SUITE(with_reason_token, arc_test::all_token_kinds, arc_test::token_kind_name);

TYPED_TEST(bind_cancel_token, cancelling_the_source_aborts_the_bound_operation)
{
  auto& f = this->f;
  const auto got = TypeParam::run(f, bind_cancel_adapter{}, [&] { f.src.cancel(this->why); });
  EXPECT_EQ(got.calls, 1);
  EXPECT_EQ(got.ec, asio::error::operation_aborted);
  EXPECT_EQ(got.ec, boost::system::errc::operation_canceled);
}

TYPED_TEST(bind_cancel_token, a_later_request_does_not_change_the_reason)
{
  auto& f = this->f;
  bool first = false, second = true;
  const auto got = TypeParam::run(f, bind_cancel_adapter{}, [&] {
    first = f.src.cancel(this->why);
    second = f.src.cancel(this->later); // before the operation's completion has run
  });
  EXPECT_TRUE(first);
  EXPECT_FALSE(second);
  EXPECT_EQ(got.calls, 1);
  EXPECT_EQ(got.ec, asio::error::operation_aborted);
  EXPECT_EQ(f.src.reason(), this->why);
  EXPECT_EQ(f.src.requests(), 2u);
}

// The completion re-enters: it cancels its source again and starts a new
// operation bound to it, which is cancelled at once (level-triggered), with
// the first reason.
TYPED_TEST(bind_cancel_reentrant_token, a_completion_may_cancel_again_and_start_a_new_bound_operation)
{
  auto& f = this->f;
  asio::steady_timer second(f.ctx, 1h);
  bool again_was_first = true;
  int second_calls = 0;
  error_code second_ec;
  arc::cancel_reason second_reason;
  const auto got = TypeParam::run(f, bind_cancel_adapter{}, [&] { f.src.cancel(this->why); }, [&] {
    again_was_first = f.src.cancel(this->later);
    second.async_wait(arc::with_reason(f.src, [&](error_code ec, arc::cancel_reason r) {
      ++second_calls;
      second_ec = ec;
      second_reason = r;
    }));
  });
  EXPECT_EQ(got.calls, 1);
  EXPECT_EQ(got.ec, asio::error::operation_aborted);
  EXPECT_FALSE(again_was_first);
  EXPECT_EQ(second_calls, 1);
  EXPECT_EQ(second_ec, asio::error::operation_aborted);
  EXPECT_EQ(second_reason, this->why);
  EXPECT_EQ(f.src.requests(), 2u);
}

TYPED_TEST(with_reason_token, appends_the_reason_the_source_was_cancelled_with)
{
  auto& f = this->f;
  const auto got = TypeParam::run(f, with_reason_adapter{}, [&] { f.src.cancel(this->why); });
  EXPECT_EQ(got.calls, 1);
  EXPECT_EQ(got.ec, asio::error::operation_aborted);
  EXPECT_EQ(got.ec, boost::system::errc::operation_canceled);
  EXPECT_EQ(got.reason, this->why) << got.reason; // the same recorded event
}

TYPED_TEST(with_reason_token, a_later_request_does_not_change_the_reason)
{
  auto& f = this->f;
  const auto got = TypeParam::run(f, with_reason_adapter{}, [&] {
    f.src.cancel(this->why);
    f.src.cancel(this->later); // before the operation's completion has run
  });
  EXPECT_EQ(got.calls, 1);
  EXPECT_EQ(got.ec, asio::error::operation_aborted);
  EXPECT_EQ(got.reason, this->why) << got.reason;
  EXPECT_EQ(f.src.requests(), 2u);
}

// The use_future kind above uses the packaged-task form with with_reason,
// because the plain form turns the error into an exception, and the reason
// with it.
TEST(with_reason, plain_use_future_turns_the_error_into_an_exception_and_drops_the_reason)
{
  fixture f;
  std::future<arc::cancel_reason> plain = f.timer.async_wait(arc::with_reason(f.src, asio::use_future));
  f.cancel_soon();
  f.ctx.run();
  try
  {
    plain.get();
    FAIL() << "the future should hold operation_aborted";
  }
  catch (const boost::system::system_error& e)
  {
    EXPECT_EQ(e.code(), asio::error::operation_aborted);
  }
}

// --- Other properties ---

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
