// 02_timeouts: tell a timeout from every other cancellation, by error code alone.
//
// - arc::cancel_after bounds one operation; on expiry it completes with
//   arc::error::timed_out, not operation_aborted.
// - arc::with_timeout bounds a whole coroutine body and throws
//   arc::cancelled_error{timed_out} carrying the timeout reason.
// - An outer cancellation that arrives first passes through unchanged.
#include <arc.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/connect_pair.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <iostream>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using boost::system::error_code;

// A peer that accepts the connection and never says a word.
struct silent_peer
{
  asio::local::stream_protocol::socket us, them;
  explicit silent_peer(const asio::any_io_executor& ex) : us(ex), them(ex)
  {
    asio::local::connect_pair(us, them);
  }
};

asio::awaitable<void> slow_handshake()
{
  asio::steady_timer t(co_await asio::this_coro::executor, 1h);
  co_await t.async_wait(asio::use_awaitable);
}

asio::awaitable<int> demo(arc::cancel_source shutdown)
{
  auto ex = co_await asio::this_coro::executor;
  int failures = 0;

  // 1. One read, bounded by cancel_after; with_reason appends why.
  silent_peer peer(ex);
  char byte;
  auto [ec, n, why] = co_await asio::async_read(peer.us, asio::buffer(&byte, 1),
      arc::cancel_after(30ms, arc::with_reason(shutdown, asio::as_tuple(asio::use_awaitable))));
  std::cout << "read: " << ec.message() << " (timed_out? " << (ec == arc::error::timed_out)
            << ", a cancellation? " << (ec == boost::system::errc::operation_canceled) << ")\n"
            << "  why: " << why << '\n';
  failures += ec != arc::error::timed_out;

  // 2. A whole body, bounded by with_timeout.
  try
  {
    co_await arc::with_timeout(30ms, slow_handshake());
  }
  catch (const arc::cancelled_error& e)
  {
    std::cout << "handshake: " << e.code().message() << "\n  why: " << e.reason() << '\n';
    failures += e.code() != arc::error::timed_out;
  }

  // 3. The same read, but the server shuts down before the deadline: the
  //    shutdown passes through as operation_aborted, with its own reason.
  asio::steady_timer soon(ex, 10ms);
  soon.async_wait([shutdown](error_code) mutable { shutdown.cancel(arc::reason::shutdown("deploy")); });
  auto [ec2, n2, why2] = co_await asio::async_read(peer.us, asio::buffer(&byte, 1),
      arc::cancel_after(1h, arc::with_reason(shutdown, asio::as_tuple(asio::use_awaitable))));
  std::cout << "read during shutdown: " << ec2.message()
            << " (timed_out? " << (ec2 == arc::error::timed_out) << ")\n  why: " << why2 << '\n';
  failures += ec2 != asio::error::operation_aborted || why2.kind() != arc::reason_kind::shutdown;
  (void)n;
  (void)n2;
  co_return failures;
}

int main()
{
  asio::io_context ctx;
  arc::cancel_source shutdown(ctx);
  int failures = -1;
  arc::co_spawn(ctx, demo(shutdown), [&](std::exception_ptr e, int f) { failures = e ? -2 : f; });
  ctx.run();
  return failures == 0 ? 0 : 1;
}
