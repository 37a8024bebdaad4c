// 05_cleanup_guard: cleanup that survives a second Ctrl-C; a third escalates.
//
// A service is stopped by a first "Ctrl-C" (a signal reason on its source).
// It then flushes its buffers inside arc::cleanup with escalate::after(2):
// - run 1: a second Ctrl-C arrives during the flush; it is absorbed and
//   counted, and the flush completes;
// - run 2: a second and a third arrive; the third gets through as
//   `escalated`, and the flush stops there.
#include <arc.hpp>

#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <csignal>
#include <iostream>

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

// Four chunks, 30 ms each.
asio::awaitable<int> flush()
{
  asio::steady_timer t(co_await asio::this_coro::executor);
  int written = 0;
  for (; written != 4; ++written)
  {
    t.expires_after(30ms);
    co_await t.async_wait(asio::use_awaitable);
    std::cout << "    flushed chunk " << written + 1 << '\n';
  }
  co_return written;
}

asio::awaitable<void> service(bool* flushed)
{
  bool stopping = false;
  try
  {
    asio::steady_timer idle(co_await asio::this_coro::executor, 1h);
    co_await idle.async_wait(arc::use_awaitable);
  }
  catch (const arc::cancelled_error& e)
  {
    std::cout << "  stopping: " << e.reason() << '\n';
    stopping = true;
  }
  if (!stopping)
    co_return;
  // Asio's rule: reset the coroutine's cancelled state before awaiting again.
  co_await asio::this_coro::reset_cancellation_state();
  try
  {
    const int chunks = co_await arc::cleanup(flush(), arc::escalate::after(2));
    *flushed = true;
    std::cout << "  flush complete: " << chunks << " chunks; requests seen: "
              << arc::this_task::requests() << '\n';
  }
  catch (const arc::cancelled_error& e)
  {
    std::cout << "  flush cut short: " << e.code().message() << "\n    why: " << e.reason() << '\n';
  }
}

// Run the service and press "Ctrl-C" @p presses times, 40 ms apart.
bool run(int presses)
{
  asio::io_context ctx;
  arc::cancel_source stop(ctx);
  bool flushed = false;
  arc::co_spawn(ctx, service(&flushed), arc::bind_cancel(stop, asio::detached));
  asio::steady_timer press(ctx);
  int pressed = 0;
  auto next = [&](auto& self) -> void {
    press.expires_after(pressed == 0 ? 10ms : 40ms);
    press.async_wait([&, self](boost::system::error_code) {
      std::cout << "  ^C (" << ++pressed << ")\n";
      stop.cancel(arc::reason::signal(SIGINT));
      if (pressed < presses)
        self(self);
    });
  };
  next(next);
  ctx.run();
  return flushed;
}

} // namespace

int main()
{
  std::cout << "run 1: two Ctrl-C\n";
  const bool first = run(2);
  std::cout << "run 2: three Ctrl-C\n";
  const bool second = run(3);
  return first && !second ? 0 : 1;
}
