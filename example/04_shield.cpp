// 04_shield: work that must finish, and a deadline for work that hangs.
//
// Two orders are handled while their client disconnects. Each commits its
// order inside arc::shield, so the disconnect cannot cut the commit short:
// order 1's commit finishes, and only then is the handler told why it stops
// (its reply is not sent). Order 2's commit hangs; its shield's deadline
// forces it, with reason kind shield_deadline.
#include <arc.hpp>

#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <iostream>
#include <string>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using ms = std::chrono::milliseconds;

namespace {

const auto start = std::chrono::steady_clock::now();

std::string at()
{
  return std::to_string(std::chrono::duration_cast<ms>(std::chrono::steady_clock::now() - start).count()) + " ms";
}

bool committed[3] = {};
bool forced = false;

// The write to the database: @p takes long.
asio::awaitable<void> commit(int order, ms takes)
{
  asio::steady_timer write(co_await asio::this_coro::executor, takes);
  co_await write.async_wait(asio::use_awaitable);
  committed[order] = true;
  std::cout << "[" << at() << "] order " << order << ": committed"
            << (arc::this_task::cancelled() ? "" : " (the shield's work was never cancelled)") << '\n';
}

asio::awaitable<void> handle(int order, ms takes, ms deadline)
{
  try
  {
    co_await arc::shield(commit(order, takes), {.deadline = deadline, .name = "commit"});
    std::cout << "[" << at() << "] order " << order << ": handler resumes; cancelled meanwhile: "
              << (arc::this_task::cancelled() ? "yes" : "no") << '\n';
    asio::steady_timer reply(co_await asio::this_coro::executor, 10ms); // send the receipt
    co_await reply.async_wait(arc::use_awaitable);
    std::cout << "[" << at() << "] order " << order << ": receipt sent\n";
  }
  catch (const arc::cancelled_error& e)
  {
    if (e.code() == arc::error::shield_deadline_exceeded)
      forced = true;
    std::cout << "[" << at() << "] order " << order << ": " << e.code().message() << "\n    why: "
              << e.reason() << '\n';
  }
}

} // namespace

int main()
{
  asio::io_context ctx;
  arc::cancel_source client(ctx);
  arc::co_spawn(ctx, handle(1, 100ms, 1s), arc::bind_cancel(client, asio::detached));
  arc::co_spawn(ctx, handle(2, 1h, 60ms), arc::bind_cancel(client, asio::detached));

  asio::steady_timer disconnect(ctx, 20ms);
  disconnect.async_wait([&](boost::system::error_code) {
    std::cout << "[" << at() << "] the client disconnects; shields running: " << arc::shields(ctx).size() << '\n';
    client.cancel(arc::reason::user("client disconnected"));
  });
  ctx.run();
  return committed[1] && forced ? 0 : 1;
}
