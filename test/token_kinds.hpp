// arc: Asio Reasoned Cancellation — completion-token kinds for typed tests.
//
// Each kind starts `timer.async_wait(adapt(fixture, <token of the kind>))`,
// posts the test's request right after the operation has started, drives the
// io_context until the completion ran and then until no work is left, and
// returns what the completion observed. An adapter wraps the kind's token:
// arc::bind_cancel, arc::with_reason, arc::cancel_after, ...
//
//   struct some_adapter
//   {
//     static constexpr bool appends_reason = ...; // void(error_code[, cancel_reason])
//     template <typename Token> auto operator()(token_fixture&, Token&&) const;
//   };
//
// A kind may also run the test's `on_complete()` inside the completion (the
// handler, or the coroutine once resumed); kinds whose completion runs no code
// of the test's (plain use_future) are left out of reentrant_token_kinds.
#ifndef ARC_TEST_TOKEN_KINDS_HPP
#define ARC_TEST_TOKEN_KINDS_HPP

#include "test_util.hpp"

#include <arc/cancel_reason.hpp>
#include <arc/cancel_source.hpp>

// On Boost 1.81 promise.hpp must come before use_promise.hpp.
#include <boost/asio/experimental/promise.hpp>
#include <boost/asio/experimental/use_promise.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

namespace arc_test {

// An io_context, a timer that completes only when cancelled, a source.
struct token_fixture
{
  boost::asio::io_context ctx;
  arc::cancel_source src;
  boost::asio::steady_timer timer{ctx, std::chrono::hours(1)};
};

// What the completion observed.
struct observed
{
  int calls = 0;                 // how many times the completion ran
  boost::system::error_code ec;  // its error
  arc::cancel_reason reason;     // the appended reason (adapters that append one)
};

// The default on_complete: nothing.
struct no_hook
{
  void operator()() const noexcept {}
};

// Record one completion; the arity must be the adapter's.
template <typename Adapter, typename... Reason>
void record(observed& o, boost::system::error_code ec, const Reason&... r)
{
  static_assert(sizeof...(Reason) == (Adapter::appends_reason ? 1u : 0u),
      "the completion's arguments are not the adapter's signature");
  static_assert((std::is_same_v<Reason, arc::cancel_reason> && ...));
  ++o.calls;
  o.ec = ec;
  ((o.reason = r), ...);
}

// Run @p ctx until it has no work left; a hang (work left behind) fails the
// test, and a second completion would have run by then. Skipped once the test
// has failed (say, the completion never ran: no second 30 s wait).
inline void drain(boost::asio::io_context& ctx)
{
  if (::testing::Test::HasFailure())
    return;
  ctx.restart();
  run_until(ctx, [&] { return ctx.stopped(); });
}

namespace kind {

namespace asio = boost::asio;
using boost::system::error_code;

struct callback
{
  static constexpr const char* name = "callback";

  template <typename Adapter, typename Request, typename OnComplete = no_hook>
  static observed run(token_fixture& f, Adapter adapt, Request request, OnComplete on_complete = {})
  {
    observed o;
    f.timer.async_wait(adapt(f, [&](error_code ec, auto... r) {
      record<Adapter>(o, ec, r...);
      on_complete();
    }));
    asio::post(f.ctx, request);
    run_until(f.ctx, [&] { return o.calls > 0; });
    drain(f.ctx);
    return o;
  }
};

struct use_awaitable
{
  static constexpr const char* name = "use_awaitable";

  template <typename Adapter, typename Request, typename OnComplete = no_hook>
  static observed run(token_fixture& f, Adapter adapt, Request request, OnComplete on_complete = {})
  {
    observed o;
    run_task(f.ctx, [&]() -> asio::awaitable<void> {
      asio::post(f.ctx, request);
      if constexpr (Adapter::appends_reason)
      {
        // Plain use_awaitable would throw the error, and the reason with it.
        auto [ec, r] = co_await f.timer.async_wait(adapt(f, asio::as_tuple(asio::use_awaitable)));
        record<Adapter>(o, ec, r);
      }
      else
      {
        error_code ec;
        try
        {
          co_await f.timer.async_wait(adapt(f, asio::use_awaitable));
        }
        catch (const boost::system::system_error& e)
        {
          ec = e.code();
        }
        record<Adapter>(o, ec);
      }
      on_complete();
    }());
    drain(f.ctx);
    return o;
  }
};

struct deferred
{
  static constexpr const char* name = "deferred";

  template <typename Adapter, typename Request, typename OnComplete = no_hook>
  static observed run(token_fixture& f, Adapter adapt, Request request, OnComplete on_complete = {})
  {
    observed o;
    auto op = f.timer.async_wait(adapt(f, asio::deferred));
    std::move(op)([&](error_code ec, auto... r) {
      record<Adapter>(o, ec, r...);
      on_complete();
    });
    asio::post(f.ctx, request);
    run_until(f.ctx, [&] { return o.calls > 0; });
    drain(f.ctx);
    return o;
  }
};

struct use_future
{
  static constexpr const char* name = "use_future";

  template <typename Adapter, typename Request, typename OnComplete = no_hook>
  static observed run(token_fixture& f, Adapter adapt, Request request, OnComplete on_complete = {})
  {
    observed o;
    if constexpr (Adapter::appends_reason)
    {
      // Plain use_future turns the error into an exception, and the reason
      // with it; the packaged-task form sees every argument.
      int calls = 0;
      auto fut = f.timer.async_wait(adapt(f, asio::use_future([&](error_code ec, auto... r) {
        ++calls;
        on_complete();
        return std::tuple(ec, r...);
      })));
      asio::post(f.ctx, request);
      run_until(f.ctx, [&] { return calls > 0; });
      drain(f.ctx);
      std::apply([&](error_code ec, const auto&... r) { record<Adapter>(o, ec, r...); }, fut.get());
      o.calls = calls;
    }
    else
    {
      static_assert(std::is_same_v<OnComplete, no_hook>,
          "plain use_future runs no code of the test's in the completion");
      std::future<void> fut = f.timer.async_wait(adapt(f, asio::use_future));
      asio::post(f.ctx, request);
      // A status query, not a time limit: the future is either ready or not.
      const auto ready = [&] { return fut.wait_for(std::chrono::seconds::zero()) == std::future_status::ready; };
      run_until(f.ctx, ready);
      drain(f.ctx);
      if (!ready())
        return o;
      error_code ec;
      try
      {
        fut.get(); // a second completion would have thrown future_error from ctx.run
      }
      catch (const boost::system::system_error& e)
      {
        ec = e.code();
      }
      record<Adapter>(o, ec);
    }
    return o;
  }
};

struct as_tuple
{
  static constexpr const char* name = "as_tuple";

  template <typename Adapter, typename Request, typename OnComplete = no_hook>
  static observed run(token_fixture& f, Adapter adapt, Request request, OnComplete on_complete = {})
  {
    observed o;
    f.timer.async_wait(adapt(f, asio::as_tuple([&](auto t) {
      using expected = std::conditional_t<Adapter::appends_reason,
          std::tuple<error_code, arc::cancel_reason>, std::tuple<error_code>>;
      static_assert(std::is_same_v<decltype(t), expected>);
      std::apply([&](error_code ec, const auto&... r) { record<Adapter>(o, ec, r...); }, t);
      on_complete();
    })));
    asio::post(f.ctx, request);
    run_until(f.ctx, [&] { return o.calls > 0; });
    drain(f.ctx);
    return o;
  }
};

struct redirect_error
{
  static constexpr const char* name = "redirect_error";

  template <typename Adapter, typename Request, typename OnComplete = no_hook>
  static observed run(token_fixture& f, Adapter adapt, Request request, OnComplete on_complete = {})
  {
    observed o;
    error_code ec;
    run_task(f.ctx, [&]() -> asio::awaitable<void> {
      asio::post(f.ctx, request);
      if constexpr (Adapter::appends_reason)
      {
        arc::cancel_reason r =
            co_await f.timer.async_wait(adapt(f, asio::redirect_error(asio::use_awaitable, ec)));
        record<Adapter>(o, ec, r);
      }
      else
      {
        co_await f.timer.async_wait(adapt(f, asio::redirect_error(asio::use_awaitable, ec)));
        record<Adapter>(o, ec);
      }
      on_complete();
    }());
    drain(f.ctx);
    return o;
  }
};

struct use_promise
{
  static constexpr const char* name = "use_promise";

  template <typename Adapter, typename Request, typename OnComplete = no_hook>
  static observed run(token_fixture& f, Adapter adapt, Request request, OnComplete on_complete = {})
  {
    observed o;
    auto p = f.timer.async_wait(adapt(f, asio::experimental::use_promise));
    auto completion = [&](error_code ec, auto... r) {
      record<Adapter>(o, ec, r...);
      on_complete();
    };
    asio::post(f.ctx, request);
    if constexpr (Adapter::appends_reason)
    {
      // Boost 1.81's promise moves the arguments twice when a completion is
      // already attached, so a non-trivial value would arrive moved-from; a
      // completion attached once the result is stored receives it intact
      // (doc/design.md, "Other Boost 1.81 findings").
      run_until(f.ctx, [&] { return p.completed(); });
      p(completion);
    }
    else
    {
      p(completion); // the operation is running: attached before it completes
    }
    run_until(f.ctx, [&] { return o.calls > 0; });
    drain(f.ctx);
    return o;
  }
};

} // namespace kind

// Every token kind.
using all_token_kinds = ::testing::Types<kind::callback, kind::use_awaitable, kind::deferred,
    kind::use_future, kind::as_tuple, kind::redirect_error, kind::use_promise>;

// The kinds whose completion runs code of the test's (a handler, or a
// coroutine resumed): all but plain use_future.
using reentrant_token_kinds = ::testing::Types<kind::callback, kind::use_awaitable, kind::deferred,
    kind::as_tuple, kind::redirect_error, kind::use_promise>;

// Typed-test names: bind_cancel_token/use_future.<test>, not .../3.<test>.
struct token_kind_name
{
  template <typename Kind>
  static std::string GetName(int)
  {
    return Kind::name;
  }
};

} // namespace arc_test

#endif
