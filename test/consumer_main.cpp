// A consumer of arc::arc: cancel a timer with a reason and check what arrives.
#include <arc.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <iostream>

int main()
{
  boost::asio::io_context ctx;
  arc::cancel_source src(ctx);
  boost::asio::steady_timer timer(ctx, std::chrono::hours(1));
  int result = 1;
  timer.async_wait(arc::with_reason(src,
      [&](boost::system::error_code ec, arc::cancel_reason r)
      {
        std::cout << ec.message() << ": " << r << '\n';
        result = ec == boost::system::errc::operation_canceled && r.message() == "consumer" ? 0 : 1;
      }));
  src.cancel(arc::reason::user("consumer"));
  ctx.run();
  return result;
}
