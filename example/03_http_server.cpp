// 03_http_server: an HTTP/1.1 server that shuts down gracefully and says why.
//
//   03_http_server [--port N] [--grace MS] [--threads N] [--deadline MS]
//                  [--commit MS] [--commit-deadline MS] [--demo]
//
// - Every connection is a child of the group "connections"; the accept loop
//   is the one child of "listener".
// - Each request has a deadline (arc::cancel_after): one that runs past it
//   gets a 503.
// - GET /             answers at once.
//   GET /slow?ms=N    sleeps N ms, then answers.
//   GET /stream       sends a chunk every 100 ms until the request's deadline
//                     or the shutdown, then a last chunk that says which.
//   POST /orders      commits the order inside arc::shield (a simulated write
//                     of --commit ms, 300 by default; `?hang=1` never ends):
//                     neither a client that disconnects nor the shutdown can
//                     cut it short, and its deadline (--commit-deadline, 1000
//                     ms) forces one that hangs (a 500).
// - Every response goes out through arc::guarded(escalate::after(2)): once
//   the server is stopping, the escalation (after the grace, or a second
//   signal) does not cut the final write; one more request (a third signal)
//   does.
// - On SIGINT or SIGTERM (arc::shutdown_on_signals): stop accepting, close
//   idle connections at once, let every response already started finish
//   within the grace, and answer it with `Connection: close` and the reason.
//   After the grace, what still runs is cut (escalated). A second signal
//   escalates at once, a third gives up. The shutdown report is printed; the
//   exit status is 0 if nothing was left behind.
// - --threads N runs the io_context on N threads, a strand per connection.
// - --demo runs a few clients against the server, then raises SIGTERM.
#include <arc.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;
using namespace std::chrono_literals;
using ms = std::chrono::milliseconds;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

struct config
{
  unsigned short port = 8080;
  ms grace{5000};
  ms deadline{5000}; // per request
  unsigned threads = 1;
  ms commit{300};            // the simulated write of an order
  ms commit_deadline{1000};  // its shield's deadline
  bool demo = false;
};

// One whole line at a time, from any thread.
template <typename... T>
void log(const T&... parts)
{
  static std::mutex m;
  std::ostringstream line;
  (line << ... << parts);
  std::lock_guard lock(m);
  std::cout << line.str() << std::endl;
}

// A connection has two states. While it waits for a request it is idle, and
// the shutdown's first request closes it at once: the idle read is bound to
// the task's source itself. Once it has a request it is busy, and this filter
// on the coroutine's own cancellation state holds the shutdown back until
// the response is out: only a second request (the escalation after the
// grace, or a second signal) reaches its operations and cuts it off.
auto only_after_escalation(arc::cancel_source self)
{
  return [self](asio::cancellation_type_t t) {
    return self.requests() > 1 ? t : asio::cancellation_type::none;
  };
}

using response = http::response<http::string_body>;

response reply(const http::request<http::string_body>& req, http::status s, std::string body)
{
  response res(s, req.version());
  res.set(http::field::content_type, "text/plain");
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

// GET /stream: chunks until the request's source is cancelled, by its
// deadline or by the shutdown; the last chunk says which.
asio::awaitable<void> stream_ticks(beast::tcp_stream& stream,
    const http::request<http::string_body>& req, arc::cancel_source request_src)
{
  http::response<http::empty_body> head(http::status::ok, req.version());
  head.set(http::field::content_type, "text/plain");
  head.chunked(true);
  http::response_serializer<http::empty_body> sr(head);
  if (auto [ec, n] = co_await http::async_write_header(stream, sr, use_tuple); ec)
    co_return;
  asio::steady_timer tick(stream.get_executor());
  for (int i = 1;; ++i)
  {
    tick.expires_after(100ms);
    if (auto [ec] = co_await tick.async_wait(arc::bind_cancel(request_src, use_tuple)); ec)
      break;
    const std::string line = "tick " + std::to_string(i) + "\n";
    if (auto [ec, n] = co_await asio::async_write(stream, http::make_chunk(asio::buffer(line)), use_tuple);
        ec)
      co_return;
  }
  const std::string last = "end of stream: " + to_string(request_src.reason()) + "\n";
  co_await asio::async_write(stream, http::make_chunk(asio::buffer(last)), use_tuple);
  co_await asio::async_write(stream, http::make_chunk_last(), use_tuple);
}

// Answer one request: the response to send, or none if the endpoint sent it
// itself (the stream).
// The simulated write of an order to the database.
asio::awaitable<void> commit_order(int id, ms takes)
{
  asio::steady_timer write(co_await asio::this_coro::executor, takes);
  co_await write.async_wait(asio::use_awaitable);
  log("order ", id, ": written");
}

// POST /orders: the commit runs inside a shield, so that whatever cancels the
// connection (its client gone, the server stopping) waits for it.
asio::awaitable<response> place_order(const http::request<http::string_body>& req, const config& cfg)
{
  static std::atomic<int> next_id{0};
  const int id = ++next_id;
  const bool hang = req.target().find("hang=1") != std::string_view::npos;
  const std::string name = "order " + std::to_string(id);
  try
  {
    co_await arc::shield(commit_order(id, hang ? ms(std::chrono::hours(1)) : cfg.commit),
        {.deadline = cfg.commit_deadline, .name = name});
  }
  catch (const arc::cancelled_error& e)
  {
    if (e.code() != arc::error::shield_deadline_exceeded)
      throw;
    log(name, ": commit forced at its deadline: ", e.reason());
    co_return reply(req, http::status::internal_server_error, name + ": the commit did not finish in time\n");
  }
  if (arc::this_task::cancelled())
    log(name, ": committed, although the connection was cancelled meanwhile: ", arc::this_task::reason());
  else
    log(name, ": committed");
  co_return reply(req, http::status::created, name + " committed\n");
}

asio::awaitable<std::optional<response>> answer(beast::tcp_stream& stream,
    const http::request<http::string_body>& req, const config& cfg)
{
  const ms deadline = cfg.deadline;
  const std::string_view target = req.target();
  if (req.method() == http::verb::post && target.starts_with("/orders"))
    co_return co_await place_order(req, cfg);
  if (target == "/")
    co_return reply(req, http::status::ok, "hello\n");
  if (target.starts_with("/slow?ms="))
  {
    // A string_view into the request: not NUL-terminated, so no atoi.
    int sleep_ms = 0;
    std::from_chars(target.data() + 9, target.data() + target.size(), sleep_ms);
    asio::steady_timer work(stream.get_executor(), ms(sleep_ms));
    auto [ec] = co_await work.async_wait(arc::cancel_after(deadline, use_tuple));
    if (ec == arc::error::timed_out)
      co_return reply(req, http::status::service_unavailable,
          "deadline of " + std::to_string(deadline.count()) + " ms exceeded\n");
    if (ec)
      throw boost::system::system_error(ec); // escalated: the connection is cut
    co_return reply(req, http::status::ok, "slept " + std::to_string(sleep_ms) + " ms\n");
  }
  if (target == "/stream")
  {
    // The request's own source: the task's child, with the deadline.
    arc::cancel_source request_src = arc::this_task::source().make_child();
    request_src.cancel_after(deadline);
    co_await stream_ticks(stream, req, request_src);
    co_return std::nullopt;
  }
  co_return reply(req, http::status::not_found, "no such page\n");
}

asio::awaitable<void> serve(tcp::socket socket, const config& cfg)
{
  const arc::cancel_source self = arc::this_task::source();
  const std::string_view name = arc::this_task::name();
  co_await asio::this_coro::reset_cancellation_state(only_after_escalation(self));

  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  for (;;)
  {
    // Idle: reading is bound to the task's source itself, so the shutdown's
    // first request ends it (and a read started after it, at once).
    http::request<http::string_body> req;
    auto [ec, n] = co_await http::async_read(stream, buffer, req, arc::bind_cancel(self, use_tuple));
    if (ec == http::error::end_of_stream)
      break;
    if (ec && self.cancelled())
    {
      log(name, ": idle, closed: ", self.reason());
      break;
    }
    if (ec)
    {
      log(name, ": ", ec.message());
      break;
    }

    // Busy: from here to the end of the response only an escalation gets in.
    const std::string what = std::string(req.method_string()) + " " + std::string(req.target());
    log(name, ": ", what, " started");
    std::optional<response> res = co_await answer(stream, req, cfg);
    const bool stopping = self.cancelled();
    const bool closing = stopping || !req.keep_alive();
    if (res)
    {
      res->keep_alive(!closing);
      if (stopping)
        res->set("X-Closing", to_string(self.reason().root()));
      // The final write: a second request once stopping (the escalation)
      // is absorbed, a third gets through.
      if (auto [wec, wn] = co_await http::async_write(stream, *res,
              arc::guarded(arc::escalate::after(2), use_tuple));
          wec)
      {
        log(name, ": ", what, " not sent: ", wec.message());
        co_return;
      }
    }
    if (stopping)
      log(name, ": ", what, " -> ", res ? res->result_int() : 200, ", then closed: ", self.reason());
    else
      log(name, ": ", what, " -> ", res ? res->result_int() : 200);
    if (closing || !res)
      break;
  }
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

asio::awaitable<void> accept_loop(tcp::acceptor& acceptor, arc::group_ref connections,
    asio::io_context& ctx, const config& cfg)
{
  for (;;)
  {
    // On a multi-threaded context each connection runs on a strand of its own.
    const asio::any_io_executor ex = cfg.threads > 1 ? asio::any_io_executor(asio::make_strand(ctx))
                                             : asio::any_io_executor(ctx.get_executor());
    auto [ec, socket] = co_await acceptor.async_accept(ex, use_tuple);
    if (ec)
    {
      log("stopped accepting: ", arc::this_task::cancelled() ? to_string(arc::this_task::reason()) : ec.message());
      co_return;
    }
    const tcp::endpoint peer = socket.remote_endpoint(ec);
    std::ostringstream name;
    name << "conn " << peer;
    try
    {
      connections.spawn(serve(std::move(socket), cfg),
          arc::spawn_options{.name = name.str(), .executor = ex});
    }
    catch (const boost::system::system_error& e) // arc::error::group_closed
    {
      log(name.str(), ": refused: ", e.code().message());
    }
  }
}

// --demo: four clients, then SIGTERM.
asio::awaitable<void> demo_client(unsigned short port, http::verb verb, std::string target, bool keep)
{
  beast::tcp_stream s(co_await asio::this_coro::executor);
  co_await s.async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), use_tuple);
  http::request<http::string_body> req(verb, target, 11);
  if (verb == http::verb::post)
  {
    req.body() = "2 books";
    req.prepare_payload();
  }
  req.keep_alive(keep);
  co_await http::async_write(s, req, use_tuple);
  beast::flat_buffer b;
  for (;;)
  {
    http::response<http::string_body> res;
    auto [ec, n] = co_await http::async_read(s, b, res, use_tuple);
    if (ec)
    {
      log("  client ", target, ": connection closed (", ec.message(), ")");
      co_return;
    }
    std::string body = res.body();
    while (!body.empty() && body.back() == '\n')
      body.pop_back();
    for (auto& c : body)
      if (c == '\n')
        c = '|';
    log("  client ", target, ": ", res.result_int(), " ", body,
        res.keep_alive() ? "" : " [Connection: close]");
  }
}

asio::awaitable<void> demo(unsigned short port)
{
  auto ex = co_await asio::this_coro::executor;
  log("demo: GET / (then idle), GET /slow?ms=300, GET /stream, POST /orders; SIGTERM after 250 ms");
  arc::co_spawn(ex, demo_client(port, http::verb::get, "/", true), asio::detached);
  arc::co_spawn(ex, demo_client(port, http::verb::get, "/slow?ms=300", true), asio::detached);
  arc::co_spawn(ex, demo_client(port, http::verb::get, "/stream", true), asio::detached);
  arc::co_spawn(ex, demo_client(port, http::verb::post, "/orders", true), asio::detached);
  asio::steady_timer t(ex, 250ms);
  co_await t.async_wait(use_tuple);
  std::raise(SIGTERM);
}

config parse(int argc, char** argv)
{
  config c;
  for (int i = 1; i < argc; ++i)
  {
    const std::string_view a = argv[i];
    const auto value = [&] {
      if (i + 1 == argc)
        throw std::invalid_argument(std::string(a) + " needs a value");
      return std::atoi(argv[++i]);
    };
    if (a == "--port")
      c.port = static_cast<unsigned short>(value());
    else if (a == "--grace")
      c.grace = ms(value());
    else if (a == "--deadline")
      c.deadline = ms(value());
    else if (a == "--commit")
      c.commit = ms(value());
    else if (a == "--commit-deadline")
      c.commit_deadline = ms(value());
    else if (a == "--threads")
      c.threads = static_cast<unsigned>(std::max(1, value()));
    else if (a == "--demo")
      c.demo = true;
    else
      throw std::invalid_argument("unknown option " + std::string(a));
  }
  if (c.demo && c.port == 8080)
    c.port = 0;
  return c;
}

} // namespace

int main(int argc, char** argv)
try
{
  const config cfg = parse(argc, argv);
  asio::io_context ctx(static_cast<int>(cfg.threads));
  tcp::acceptor acceptor(ctx, tcp::endpoint(asio::ip::make_address("127.0.0.1"), cfg.port));
  const unsigned short port = acceptor.local_endpoint().port();
  log("listening on 127.0.0.1:", port);

  arc::persistent_task_group listener(ctx, {.name = "listener"});
  arc::persistent_task_group connections(ctx, {.name = "connections"});
  listener.spawn(accept_loop(acceptor, connections, ctx, cfg),
      arc::spawn_options{.name = "accept :" + std::to_string(port)});

  int status = 1;
  arc::shutdown_on_signals(ctx, {SIGINT, SIGTERM}, {.grace = cfg.grace, .force_after = 2 * cfg.grace},
      [&](boost::system::error_code ec, arc::shutdown_report report) {
        log(report);          // a line per straggler, the slowest first, then a summary
        status = ec ? 1 : 0;  // arc::error::shutdown_incomplete: something was left behind
        if (ec)
          ctx.stop();         // the stragglers would keep run() going
      });
  if (cfg.demo)
    arc::co_spawn(ctx, demo(port), asio::detached);

  std::vector<std::jthread> more;
  for (unsigned i = 1; i < cfg.threads; ++i)
    more.emplace_back([&] { ctx.run(); });
  ctx.run();
  more.clear();
  return status;
}
catch (const std::exception& e)
{
  std::cerr << "03_http_server: " << e.what() << '\n';
  return 2;
}
