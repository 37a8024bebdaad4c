// 01_cancel_reason: every cancellation says why, who cancelled, and when.
//
// A "server" source is cancelled with a shutdown reason that carries a typed
// tag. A session task and the request it awaits both see the reason: the
// session as it was given, the request one hop further, as `parent`.
#include <arc.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <iostream>

namespace asio = boost::asio;
using namespace std::chrono_literals;

struct maintenance
{
  int window_minutes;
};

asio::awaitable<void> request(const char* name)
{
  asio::steady_timer reply(co_await asio::this_coro::executor, 1h); // a peer that never answers
  try
  {
    co_await reply.async_wait(asio::use_awaitable);
  }
  catch (const boost::system::system_error& e)
  {
    std::cout << "  " << name << " ended: " << e.code().message() << '\n'
              << "    why: " << arc::this_task::reason() << '\n';
    throw;
  }
}

asio::awaitable<void> session()
{
  try
  {
    // A child task awaited with use_awaitable is linked to this one.
    co_await arc::co_spawn(co_await asio::this_coro::executor, request("GET /status"),
        asio::use_awaitable);
  }
  catch (const boost::system::system_error&)
  {
    const arc::cancel_reason why = arc::this_task::reason();
    std::cout << "  session ended\n    why: " << why << '\n';
    if (const auto* m = why.tag<maintenance>())
      std::cout << "    cleanup: tell the client to retry in " << m->window_minutes << " min\n";
    throw;
  }
}

int main()
{
  asio::io_context ctx;
  arc::cancel_source server(ctx);

  arc::cancel_reason seen;
  arc::co_spawn(ctx, session(),
      arc::with_reason(server, [&](std::exception_ptr, arc::cancel_reason r) { seen = r; }));

  std::cout << "serving; a shutdown is coming in 20 ms\n";
  asio::steady_timer later(ctx, 20ms);
  later.async_wait([&](boost::system::error_code)
      { server.cancel(arc::reason::shutdown("maintenance window", maintenance{15})); });

  ctx.run();

  std::cout << "the spawner's handler saw: " << seen << '\n'
            << "  kind " << seen.kind() << ", code \"" << seen.code().message() << "\", "
            << "requests " << server.requests() << '\n';
  return seen.kind() == arc::reason_kind::shutdown && seen.tag<maintenance>() ? 0 : 1;
}
