// arc: Asio Reasoned Cancellation — a context's shutdown, run from a test.
#ifndef ARC_TEST_SHUTDOWN_UTIL_HPP
#define ARC_TEST_SHUTDOWN_UTIL_HPP

#include "test_util.hpp"

#include <arc/registry.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <utility>

namespace arc_test {

// What arc::async_shutdown(ctx) completed with.
struct context_shutdown
{
  boost::system::error_code ec = boost::asio::error::fault;
  arc::shutdown_report report;
};

// Start a context's shutdown (reason shutdown "stop") once @p after has
// passed, and run @p ctx until it has completed.
inline context_shutdown shut_down(boost::asio::io_context& ctx, arc::shutdown_options opts,
    std::chrono::milliseconds after = std::chrono::milliseconds(0))
{
  context_shutdown out;
  bool done = false;
  boost::asio::steady_timer later(ctx, after);
  later.async_wait([&](boost::system::error_code) {
    arc::async_shutdown(ctx, arc::reason::shutdown("stop"), opts,
        [&](boost::system::error_code e, arc::shutdown_report r) {
          out.ec = e;
          out.report = std::move(r);
          done = true;
        });
  });
  run_until(ctx, [&] { return done; });
  return out;
}

} // namespace arc_test

#endif
