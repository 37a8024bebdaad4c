// arc: Asio Reasoned Cancellation — shared test helpers.
#ifndef ARC_TEST_UTIL_HPP
#define ARC_TEST_UTIL_HPP

#include <arc/co_spawn.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <exception>
#include <functional>

namespace arc_test {

// The one place a time limit appears: a generous bound after which a test is
// declared hung instead of blocking the suite. No test asserts a duration.
inline constexpr std::chrono::seconds hang_limit{30};

// Run @p ctx until @p done() holds; fail the test if that takes longer than
// hang_limit or if the context runs out of work first.
inline void run_until(boost::asio::io_context& ctx, const std::function<bool()>& done)
{
  const auto deadline = std::chrono::steady_clock::now() + hang_limit;
  while (!done())
  {
    if (std::chrono::steady_clock::now() > deadline)
    {
      ADD_FAILURE() << "hung: the condition did not hold within " << hang_limit.count() << "s";
      ctx.stop();
      return;
    }
    if (ctx.stopped())
      ctx.restart();
    if (ctx.run_one_for(std::chrono::milliseconds(50)) == 0 && ctx.stopped() && !done())
    {
      ADD_FAILURE() << "the io_context ran out of work before the condition held";
      return;
    }
  }
}

// Run the coroutine @p body as an arc task on @p ctx to completion, rethrowing
// what it throws; fail the test if it hangs.
template <typename Awaitable>
void run_task(boost::asio::io_context& ctx, Awaitable body)
{
  bool done = false;
  std::exception_ptr failure;
  arc::co_spawn(ctx, std::move(body),
      [&](std::exception_ptr e)
      {
        failure = e;
        done = true;
      });
  run_until(ctx, [&] { return done; });
  if (failure)
    std::rethrow_exception(failure);
}

} // namespace arc_test

#endif
