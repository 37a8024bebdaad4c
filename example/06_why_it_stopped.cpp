// 06_why_it_stopped: ask an operation why it stopped, give a source a
// deadline, and wait for a source without binding an operation to it.
//
// - arc::use_awaitable throws arc::cancelled_error, which carries the reason;
//   the job branches on its kind.
// - batch.cancel_after(20ms) is Go's context.WithTimeout, on a child source.
// - co_await server.async_wait(...) is Go's <-ctx.Done().
// - A cancelled task completes with its reason, whatever its body threw.
#include <arc.hpp>

#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <exception>
#include <iostream>

namespace asio = boost::asio;
using namespace std::chrono_literals;

// A job that waits for work that never comes, then says why it stopped.
asio::awaitable<void> job(const char* name)
{
  asio::steady_timer idle(co_await asio::this_coro::executor, 1h);
  try
  {
    co_await idle.async_wait(arc::use_awaitable);
  }
  catch (const arc::cancelled_error& e)
  {
    switch (e.reason().kind())
    {
    case arc::reason_kind::timeout:
      std::cout << name << ": out of time (" << e.code().message() << ")\n";
      break;
    case arc::reason_kind::shutdown:
      std::cout << name << ": shut down for " << e.reason().message() << '\n';
      break;
    default:
      std::cout << name << ": cancelled (" << e.reason().kind() << ")\n";
    }
    throw; // cleanup done; the task ends with the same reason
  }
}

// The completion of a job's task: what it ended with.
auto report(const char* name)
{
  return [name](std::exception_ptr e) {
    try
    {
      if (e)
        std::rethrow_exception(e);
      std::cout << name << " task: finished\n";
    }
    catch (const arc::cancelled_error& x)
    {
      std::cout << name << " task: ended with " << x.code().message() << '\n';
    }
  };
}

int main()
{
  asio::io_context ctx;
  arc::cancel_source server(ctx);

  // Someone who only needs to know when the server stops.
  arc::co_spawn(ctx, [&]() -> asio::awaitable<void> {
    const arc::cancel_reason why = co_await server.async_wait(asio::use_awaitable);
    std::cout << "watcher: server stopped: " << why.kind() << ", \"" << why.message() << "\"\n";
  }, asio::detached);

  // A batch under the server, with a deadline of its own.
  arc::cancel_source batch = server.make_child();
  batch.cancel_after(20ms);
  arc::co_spawn(ctx, job("batch"), arc::bind_cancel(batch, report("batch")));

  // A session that lives until the server stops.
  arc::co_spawn(ctx, job("session"), arc::bind_cancel(server, report("session")));

  asio::steady_timer maintenance(ctx, 50ms);
  maintenance.async_wait([&](boost::system::error_code) {
    server.cancel(arc::reason::shutdown("maintenance"));
  });

  ctx.run();

  // The batch's deadline fired first; the server's shutdown reached it only
  // as a later request, counted.
  std::cout << "batch: " << batch.reason().kind() << ", " << batch.requests() << " requests\n";
  return batch.reason().kind() == arc::reason_kind::timeout
          && server.reason().kind() == arc::reason_kind::shutdown
      ? 0
      : 1;
}
