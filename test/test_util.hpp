// arc: Asio Reasoned Cancellation — shared test helpers.
#ifndef ARC_TEST_UTIL_HPP
#define ARC_TEST_UTIL_HPP

#include <arc/co_spawn.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <exception>
#include <functional>
#include <memory>
#include <thread>

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


// --- Regression tests: core second pass (issue 5) ---

// Wait, on a thread that runs no io_context, until @p done() holds; fail the
// test and return false if that takes longer than hang_limit.
inline bool wait_until(const std::function<bool()>& done)
{
  const auto deadline = std::chrono::steady_clock::now() + hang_limit;
  while (!done())
  {
    if (std::chrono::steady_clock::now() > deadline)
    {
      ADD_FAILURE() << "hung: the condition did not hold within " << hang_limit.count() << "s";
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// The size of a stress test: @p n, divided by 10 under a sanitizer (they slow
// everything by 5-20x), and scaled by the environment variable
// ARC_TEST_STRESS_PERCENT (e.g. 10 for a tenth, 1000 for ten times) if set.
inline std::size_t stress(std::size_t n)
{
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
  n = n / 10 ? n / 10 : 1;
#endif
  if (const char* pct = std::getenv("ARC_TEST_STRESS_PERCENT"))
    if (const long p = std::strtol(pct, nullptr, 10); p > 0)
      n = n * static_cast<std::size_t>(p) / 100 ? n * static_cast<std::size_t>(p) / 100 : 1;
  return n;
}

// Counts what a handler's associated allocator hands out, and what is live.
struct alloc_count
{
  int allocations = 0;
  int live = 0;
};

template <typename T>
struct counting_allocator
{
  using value_type = T;
  alloc_count* count;

  explicit counting_allocator(alloc_count* c) noexcept : count(c) {}
  template <typename U>
  counting_allocator(const counting_allocator<U>& o) noexcept : count(o.count)
  {
  }

  T* allocate(std::size_t n)
  {
    ++count->allocations;
    ++count->live;
    return std::allocator<T>().allocate(n);
  }
  void deallocate(T* p, std::size_t n)
  {
    --count->live;
    std::allocator<T>().deallocate(p, n);
  }

  template <typename U>
  bool operator==(const counting_allocator<U>& o) const noexcept
  {
    return count == o.count;
  }
};

} // namespace arc_test

#endif
