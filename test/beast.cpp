// Tests of arc's token adapters with Boost.Beast: bind_cancel, with_reason,
// arc::cancel_after, arc::shielded and a shield executor on beast::tcp_stream
// and HTTP operations, over loopback.
#include <arc/bind_cancel.hpp>
#include <arc/cancel_after.hpp>
#include <arc/co_spawn.hpp>
#include <arc/persistent_task_group.hpp>
#include <arc/reasoned.hpp>
#include <arc/shield.hpp>

#include "shutdown_util.hpp"
#include "test_util.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <tuple>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;
using namespace std::chrono_literals;
using boost::system::error_code;

namespace {

// Beast 1.81 names async_result<Token, Signature>::return_type: arc's
// adapters provide the wrapped token's.
template <typename Token>
using connect_result_t = decltype(std::declval<beast::tcp_stream&>().async_connect(
    std::declval<const std::array<tcp::endpoint, 1>&>(), std::declval<Token>()));

static_assert(std::is_same_v<connect_result_t<arc::bind_cancel_t<asio::use_awaitable_t<>>>,
    asio::awaitable<tcp::endpoint>>);
static_assert(std::is_same_v<connect_result_t<arc::with_reason_t<asio::use_awaitable_t<>>>,
    asio::awaitable<std::tuple<tcp::endpoint, arc::cancel_reason>>>);
static_assert(std::is_same_v<connect_result_t<arc::cancel_after_t<asio::use_awaitable_t<>>>,
    asio::awaitable<tcp::endpoint>>);

// A listening loopback acceptor.
struct loopback
{
  asio::io_context ctx;
  tcp::acceptor acceptor{ctx, tcp::endpoint(asio::ip::address_v4::loopback(), 0)};

  std::array<tcp::endpoint, 1> endpoints() const { return {acceptor.local_endpoint()}; }
};

// A connected client and server.
struct connected_pair : loopback
{
  beast::tcp_stream client{ctx}, server{ctx};
  beast::flat_buffer buffer;
  http::request<http::string_body> request;

  connected_pair()
  {
    client.connect(endpoints());
    acceptor.accept(server.socket());
  }
};

http::request<http::string_body> hello()
{
  http::request<http::string_body> req{http::verb::post, "/hello", 11};
  req.set(http::field::host, "localhost");
  req.body() = "hello";
  req.prepare_payload();
  return req;
}

} // namespace

TEST(beast, tcp_stream_async_connect_takes_bind_cancel)
{
  loopback l;
  beast::tcp_stream s(l.ctx);
  arc::cancel_source src;
  error_code result = asio::error::would_block;
  tcp::endpoint connected;
  s.async_connect(l.endpoints(), arc::bind_cancel(src, [&](error_code ec, tcp::endpoint ep) {
    result = ec;
    connected = ep;
  }));
  l.ctx.run();
  EXPECT_FALSE(result) << result.message();
  EXPECT_EQ(connected, l.acceptor.local_endpoint());
}

TEST(beast, tcp_stream_async_connect_takes_cancel_after_and_with_reason_in_a_coroutine)
{
  loopback l;
  beast::tcp_stream s(l.ctx);
  arc::cancel_source src;
  error_code result = asio::error::would_block;
  arc::cancel_reason why = arc::reason::user("not replaced");
  arc_test::run_task(l.ctx, [&]() -> asio::awaitable<void> {
    auto [ec, ep, r] = co_await s.async_connect(l.endpoints(),
        arc::cancel_after(1h, arc::with_reason(src, asio::as_tuple(asio::use_awaitable))));
    result = ec;
    why = r;
  }());
  EXPECT_FALSE(result) << result.message();
  EXPECT_FALSE(why); // nothing asked the operation to cancel
}

TEST(beast, http_write_and_read_take_bind_cancel_and_cancel_after)
{
  connected_pair p;
  arc::cancel_source src;
  error_code wrote = asio::error::would_block, read = asio::error::would_block;
  auto req = hello();
  http::async_write(p.client, req, arc::bind_cancel(src, [&](error_code ec, std::size_t) {
    wrote = ec;
  }));
  http::async_read(p.server, p.buffer, p.request,
      arc::cancel_after(1h, asio::bind_executor(p.ctx, [&](error_code ec, std::size_t) {
        read = ec;
      })));
  p.ctx.run();
  EXPECT_FALSE(wrote) << wrote.message();
  EXPECT_FALSE(read) << read.message();
  EXPECT_EQ(p.request.target(), "/hello");
  EXPECT_EQ(p.request.body(), "hello");
}

TEST(beast, http_read_cancelled_through_the_source_reports_operation_aborted_and_the_reason)
{
  connected_pair p;
  arc::cancel_source src;
  error_code result;
  arc::cancel_reason why;
  int calls = 0;
  http::async_read(p.server, p.buffer, p.request,
      arc::with_reason(src, [&](error_code ec, std::size_t, arc::cancel_reason r) {
        ++calls;
        result = ec;
        why = r;
      }));
  const auto R = arc::reason::shutdown("server stopping");
  asio::post(p.ctx, [&] { src.cancel(R); });
  arc_test::run_until(p.ctx, [&] { return calls > 0; });
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(result, asio::error::operation_aborted);
  EXPECT_EQ(why, R);
}

TEST(beast, http_read_under_cancel_after_reports_timed_out_and_a_timeout_reason)
{
  connected_pair p;
  arc::cancel_source src;
  error_code result;
  arc::cancel_reason why;
  int calls = 0;
  // Beast 1.81's initiations have no executor: the handler's is the timer's.
  http::async_read(p.server, p.buffer, p.request,
      arc::cancel_after(20ms, arc::with_reason(src, asio::bind_executor(p.ctx,
          [&](error_code ec, std::size_t, arc::cancel_reason r) {
            ++calls;
            result = ec;
            why = r;
          }))));
  arc_test::run_until(p.ctx, [&] { return calls > 0; });
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(result, arc::error::timed_out);
  EXPECT_EQ(why.kind(), arc::reason_kind::timeout);
  EXPECT_FALSE(src.cancelled());
}

TEST(beast, http_read_in_a_coroutine_under_cancel_after_throws_timed_out)
{
  connected_pair p;
  error_code thrown;
  arc_test::run_task(p.ctx, [&]() -> asio::awaitable<void> {
    try
    {
      co_await http::async_read(p.server, p.buffer, p.request,
          arc::cancel_after(20ms, asio::use_awaitable));
    }
    catch (const boost::system::system_error& e)
    {
      thrown = e.code();
    }
  }());
  EXPECT_EQ(thrown, arc::error::timed_out);
}

TEST(beast, http_read_with_arc_use_awaitable_in_a_cancelled_task_throws_the_tasks_reason)
{
  connected_pair p;
  const auto R = arc::reason::shutdown("draining");
  arc::cancel_source task_src;
  error_code code;
  arc::cancel_reason why;
  arc_test::run_task(p.ctx, [&]() -> asio::awaitable<void> {
    task_src = arc::this_task::source();
    asio::post(p.ctx, [&] { task_src.cancel(R); });
    try
    {
      co_await http::async_read(p.server, p.buffer, p.request, arc::use_awaitable);
    }
    catch (const arc::cancelled_error& e)
    {
      code = e.code();
      why = e.reason();
    }
  }());
  EXPECT_EQ(why, R);
  EXPECT_EQ(code, arc::error::shutdown);
}

TEST(beast, a_group_child_in_http_read_is_cancelled_by_the_group_as_parent_and_is_no_failure)
{
  connected_pair p;
  int errors = 0;
  arc::persistent_task_group g(p.ctx, {.on_error = [&](std::exception_ptr, const arc::task_info&) { ++errors; }});
  const auto R = arc::reason::shutdown("draining");
  error_code read_ec;
  arc::cancel_reason seen;
  std::exception_ptr result;
  bool done = false;
  g.spawn(
      [&]() -> asio::awaitable<void> {
        auto [ec, n] = co_await http::async_read(p.server, p.buffer, p.request,
            asio::as_tuple(asio::use_awaitable));
        read_ec = ec;
        seen = arc::this_task::reason();
        if (ec)
          throw boost::system::system_error(ec);
      },
      [&](std::exception_ptr e) {
        result = e;
        done = true;
      });
  asio::post(p.ctx, [&] { g.cancel(R); });
  arc_test::run_until(p.ctx, [&] { return done; });
  EXPECT_EQ(read_ec, asio::error::operation_aborted);
  EXPECT_EQ(seen.kind(), arc::reason_kind::parent);
  EXPECT_EQ(seen.cause(), R);
  EXPECT_EQ(errors, 0);
  ASSERT_TRUE(result);
  EXPECT_THROW(std::rethrow_exception(result), arc::cancelled_error);
}

namespace {

// The client sends hello() after @p delay.
void send_hello_later(connected_pair& p, asio::steady_timer& later, http::request<http::string_body>& req,
    std::chrono::milliseconds delay)
{
  later.expires_after(delay);
  later.async_wait([&](error_code) { http::async_write(p.client, req, [](error_code, std::size_t) {}); });
}

} // namespace

TEST(beast, a_shielded_http_read_in_a_group_child_is_not_cut_by_the_groups_cancel)
{
  connected_pair p;
  arc::persistent_task_group g(p.ctx);
  const auto R = arc::reason::shutdown("draining");
  error_code read_ec = asio::error::would_block;
  bool cancelled_after_read = false;
  auto h = g.spawn([&]() -> asio::awaitable<void> {
    auto [ec, n] = co_await http::async_read(p.server, p.buffer, p.request,
        arc::shielded(asio::as_tuple(asio::use_awaitable)));
    read_ec = ec;
    cancelled_after_read = arc::this_task::cancelled();
  });
  asio::post(p.ctx, [&] { g.cancel(R); });
  asio::steady_timer later(p.ctx);
  auto req = hello();
  send_hello_later(p, later, req, 20ms);
  arc_test::run_until(p.ctx, [&] { return h.done(); });
  EXPECT_FALSE(read_ec) << read_ec.message();
  EXPECT_EQ(p.request.target(), "/hello");
  EXPECT_EQ(p.request.body(), "hello");
  EXPECT_TRUE(cancelled_after_read) << "the group's request was recorded meanwhile";
}

TEST(beast, a_context_shutdown_waits_for_an_http_read_whose_handler_runs_on_a_shield_executor)
{
  connected_pair p;
  auto audit = arc::make_shield_executor(p.ctx.get_executor(), {.name = "audit read"});
  bool read_done = false;
  error_code read_ec = asio::error::would_block;
  http::async_read(p.server, p.buffer, p.request, asio::bind_executor(audit, [&](error_code ec, std::size_t) {
    read_ec = ec;
    read_done = true;
  }));
  asio::steady_timer later(p.ctx);
  auto req = hello();
  send_hello_later(p, later, req, 30ms);
  const arc_test::context_shutdown out = arc_test::shut_down(p.ctx, {.grace = 1s, .force_after = 10s});
  EXPECT_TRUE(read_done) << "the shutdown completed after the read's handler";
  EXPECT_FALSE(read_ec) << read_ec.message();
  EXPECT_FALSE(out.ec);
  ASSERT_EQ(out.report.shields.size(), 1u);
  EXPECT_EQ(out.report.shields[0].name, "audit read");
  EXPECT_EQ(out.report.shields[0].status, arc::shield_status::done);
}
