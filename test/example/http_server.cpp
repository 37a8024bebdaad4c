// The flagship server (example/03_http_server.cpp), run as a process and
// driven by Beast clients in this one: SIGTERM lets every response already
// started finish, closes idle connections, and prints the report.
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <mutex>
#include <spawn.h>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#ifndef ARC_HTTP_SERVER
#error "ARC_HTTP_SERVER: the path of the 03_http_server executable"
#endif

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;

extern char** environ;

namespace {

constexpr std::chrono::seconds hang_limit{30};

// The server as a child process; its stdout is collected line by line.
class server_process
{
public:
  explicit server_process(std::vector<std::string> args)
  {
    args.insert(args.begin(), ARC_HTTP_SERVER);
    int fds[2];
    if (::pipe(fds) != 0)
      throw std::runtime_error("pipe");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(fds[1]);
    if (rc != 0)
      throw std::runtime_error("posix_spawn " + args[0]);
    reader_ = std::thread([this, fd = fds[0]] { read_lines(fd); });
    const std::string first = wait_for("listening on ");
    EXPECT_EQ(first.rfind("listening on 127.0.0.1:", 0), 0u) << first;
    EXPECT_EQ(lines().front(), first) << "the first line printed";
    port_ = static_cast<unsigned short>(std::stoi(first.substr(first.rfind(':') + 1)));
  }

  ~server_process()
  {
    if (pid_ > 0 && status_ < 0)
    {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (reader_.joinable())
      reader_.join();
  }

  unsigned short port() const { return port_; }

  void signal(int signo) { ::kill(pid_, signo); }

  // The first line containing @p text, once it is printed.
  std::string wait_for(const std::string& text, std::size_t count = 1)
  {
    std::unique_lock lock(m_);
    std::string found;
    const bool ok = cv_.wait_for(lock, hang_limit, [&] {
      std::size_t n = 0;
      for (const auto& l : lines_)
        if (l.find(text) != std::string::npos && ++n == count)
        {
          found = l;
          return true;
        }
      return eof_;
    });
    EXPECT_TRUE(ok && !found.empty()) << "the server did not print \"" << text << "\" " << count
                                      << " time(s); it printed:\n" << joined();
    return found;
  }

  // The exit status, once the server has exited (-1 if it did not).
  int wait_exit()
  {
    const auto until = std::chrono::steady_clock::now() + hang_limit;
    int st = 0;
    while (::waitpid(pid_, &st, WNOHANG) == 0)
    {
      if (std::chrono::steady_clock::now() > until)
      {
        ADD_FAILURE() << "the server did not exit; it printed:\n" << joined();
        return -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    reader_.join();
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return status_;
  }

  std::vector<std::string> lines()
  {
    std::lock_guard lock(m_);
    return lines_;
  }

  std::string output()
  {
    std::lock_guard lock(m_);
    return joined();
  }

private:
  void read_lines(int fd)
  {
    std::string partial;
    char buf[4096];
    for (;;)
    {
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n <= 0)
        break;
      partial.append(buf, static_cast<std::size_t>(n));
      for (std::size_t nl; (nl = partial.find('\n')) != std::string::npos; partial.erase(0, nl + 1))
      {
        std::lock_guard lock(m_);
        lines_.push_back(partial.substr(0, nl));
        cv_.notify_all();
      }
    }
    ::close(fd);
    std::lock_guard lock(m_);
    eof_ = true;
    cv_.notify_all();
  }

  std::string joined() const
  {
    std::string all;
    for (const auto& l : lines_)
      all += l + '\n';
    return all;
  }

  pid_t pid_ = -1;
  int status_ = -1;
  unsigned short port_ = 0;
  std::thread reader_;
  std::mutex m_;
  std::condition_variable cv_;
  std::vector<std::string> lines_;
  bool eof_ = false;
};

// A blocking keep-alive client.
struct client
{
  asio::io_context ctx;
  tcp::socket socket{ctx};
  beast::flat_buffer buffer;

  explicit client(unsigned short port)
  {
    socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  }

  void send(const std::string& target)
  {
    http::request<http::empty_body> req(http::verb::get, target, 11);
    req.set(http::field::host, "127.0.0.1");
    http::write(socket, req);
  }

  void post(const std::string& target, const std::string& body)
  {
    http::request<http::string_body> req(http::verb::post, target, 11);
    req.set(http::field::host, "127.0.0.1");
    req.body() = body;
    req.prepare_payload();
    http::write(socket, req);
  }

  // The next response; ec is set if the connection ended before a whole one.
  http::response<http::string_body> receive(beast::error_code& ec)
  {
    http::response_parser<http::string_body> parser;
    parser.body_limit(1 << 20);
    http::read(socket, buffer, parser, ec);
    return parser.release();
  }

  http::response<http::string_body> get(const std::string& target)
  {
    send(target);
    beast::error_code ec;
    auto res = receive(ec);
    EXPECT_FALSE(ec) << target << ": " << ec.message();
    return res;
  }
};

std::size_t count(const std::string& text, const std::string& what)
{
  std::size_t n = 0;
  for (std::size_t at = 0; (at = text.find(what, at)) != std::string::npos; at += what.size())
    ++n;
  return n;
}

} // namespace

TEST(http_server, prints_where_it_listens_first_and_answers)
{
  server_process server({"--port", "0"});
  client c(server.port());
  auto res = c.get("/");
  EXPECT_EQ(res.result(), http::status::ok);
  EXPECT_EQ(res.body(), "hello\n");
  EXPECT_TRUE(res.keep_alive());
  EXPECT_EQ(c.get("/nowhere").result(), http::status::not_found);
  server.signal(SIGINT);
  EXPECT_EQ(server.wait_exit(), 0);
}

TEST(http_server, sigterm_finishes_started_responses_closes_idle_connections_and_reports)
{
  server_process server({"--port", "0", "--threads", "2", "--grace", "5000"});
  client idle(server.port());
  EXPECT_EQ(idle.get("/").result(), http::status::ok); // now idle, kept alive
  client slow1(server.port()), slow2(server.port()), stream(server.port());
  slow1.send("/slow?ms=600");
  slow2.send("/slow?ms=800");
  stream.send("/stream");
  server.wait_for("GET /slow?ms=600 started");
  server.wait_for("GET /slow?ms=800 started");
  server.wait_for("GET /stream started");

  server.signal(SIGTERM);

  // Every response that was started is whole, and says why the connection closes.
  for (client* c : {&slow1, &slow2})
  {
    beast::error_code ec;
    auto res = c->receive(ec);
    ASSERT_FALSE(ec) << ec.message();
    EXPECT_EQ(res.result(), http::status::ok);
    EXPECT_EQ(res.body().rfind("slept ", 0), 0u) << res.body();
    EXPECT_FALSE(res.keep_alive()) << "Connection: close";
    EXPECT_NE(std::string(res["X-Closing"]).find("signal 15"), std::string::npos) << res["X-Closing"];
  }
  beast::error_code ec;
  auto streamed = stream.receive(ec);
  ASSERT_FALSE(ec) << "the chunked response is complete: " << ec.message();
  EXPECT_NE(streamed.body().find("end of stream: parent <- parent <- signal 15"), std::string::npos)
      << streamed.body();
  // The idle connection was closed without a byte.
  idle.receive(ec);
  EXPECT_EQ(ec, http::error::end_of_stream) << ec.message();

  EXPECT_EQ(server.wait_exit(), 0);
  const std::string out = server.output();
  EXPECT_EQ(count(out, "idle, closed: parent <- signal 15"), 1u) << out;
  EXPECT_EQ(count(out, "then closed: parent <- signal 15"), 3u) << out; // 2 slow, 1 stream
  EXPECT_EQ(count(out, "stopped accepting: parent <- signal 15"), 1u) << out;
  EXPECT_NE(out.find("shutdown complete after"), std::string::npos) << out;
  EXPECT_NE(out.find("0 escalated, 0 failed, 0 still running"), std::string::npos) << out;
}

TEST(http_server, a_request_past_its_deadline_gets_503_and_the_connection_stays_open)
{
  server_process server({"--port", "0", "--deadline", "250"});
  client c(server.port());
  auto late = c.get("/slow?ms=5000");
  EXPECT_EQ(late.result(), http::status::service_unavailable);
  EXPECT_EQ(late.body(), "deadline of 250 ms exceeded\n");
  EXPECT_TRUE(late.keep_alive());
  EXPECT_EQ(c.get("/slow?ms=1").result(), http::status::ok);
  // A stream ends at the request's deadline, with a last chunk that says so.
  auto s = c.get("/stream");
  EXPECT_EQ(s.body().rfind("tick 1\n", 0), 0u) << s.body();
  EXPECT_NE(s.body().find("end of stream: timeout"), std::string::npos) << s.body();
  server.signal(SIGTERM);
  EXPECT_EQ(server.wait_exit(), 0);
}

TEST(http_server, after_the_grace_a_response_still_running_is_cut_and_reported_escalated)
{
  server_process server({"--port", "0", "--grace", "200", "--deadline", "20000"});
  client c(server.port());
  c.send("/slow?ms=10000");
  server.wait_for("GET /slow?ms=10000 started");
  server.signal(SIGTERM);
  beast::error_code ec;
  c.receive(ec);
  EXPECT_TRUE(ec) << "no response: the connection was cut";
  EXPECT_EQ(server.wait_exit(), 0) << "it finished once escalated";
  const std::string out = server.output();
  EXPECT_NE(out.find("escalated: connections/conn 127.0.0.1:"), std::string::npos) << out;
  EXPECT_NE(out.find("1 escalated, 0 failed, 0 still running"), std::string::npos) << out;
}

TEST(http_server, a_second_signal_escalates_at_once)
{
  server_process server({"--port", "0", "--grace", "20000", "--deadline", "20000"});
  client c(server.port());
  c.send("/slow?ms=10000");
  server.wait_for("GET /slow?ms=10000 started");
  server.signal(SIGTERM);
  server.wait_for("stopped accepting");
  server.signal(SIGTERM);
  beast::error_code ec;
  c.receive(ec);
  EXPECT_TRUE(ec) << "no response: the connection was cut";
  EXPECT_EQ(server.wait_exit(), 0);
  EXPECT_NE(server.output().find("1 escalated"), std::string::npos) << server.output();
}

TEST(http_server, sigterm_while_an_order_commits_waits_for_the_commit_and_reports_its_shield)
{
  server_process server({"--port", "0", "--commit", "400"});
  client c(server.port());
  c.post("/orders", "2 books");
  server.wait_for("POST /orders started");
  server.signal(SIGTERM);
  beast::error_code ec;
  auto res = c.receive(ec);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(res.result(), http::status::created);
  EXPECT_EQ(res.body(), "order 1 committed\n");
  EXPECT_FALSE(res.keep_alive());
  EXPECT_EQ(server.wait_exit(), 0);
  const std::string out = server.output();
  EXPECT_NE(out.find("order 1: committed, although the connection was cancelled meanwhile: parent <- signal 15"),
      std::string::npos) << out;
  EXPECT_NE(out.find("shield order 1 #1 (03_http_server.cpp:"), std::string::npos) << out;
  EXPECT_NE(out.find(", done\n"), std::string::npos) << out;
  EXPECT_NE(out.find("1 shield (0 still running)"), std::string::npos) << out;
}

TEST(http_server, a_commit_that_hangs_is_forced_at_its_deadline_and_the_report_says_so)
{
  server_process server({"--port", "0", "--commit-deadline", "300"});
  client c(server.port());
  c.post("/orders?hang=1", "1 lamp");
  server.wait_for("POST /orders?hang=1 started");
  server.signal(SIGTERM);
  beast::error_code ec;
  auto res = c.receive(ec);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(res.result(), http::status::internal_server_error);
  EXPECT_EQ(server.wait_exit(), 0);
  const std::string out = server.output();
  EXPECT_NE(out.find("order 1: commit forced at its deadline: shield_deadline"), std::string::npos) << out;
  EXPECT_NE(out.find("done, forced at its deadline"), std::string::npos) << out;
}

TEST(http_server, an_order_commits_although_its_client_disconnects)
{
  server_process server({"--port", "0", "--commit", "200"});
  {
    client c(server.port());
    c.post("/orders", "3 chairs");
    server.wait_for("POST /orders started");
  } // the client is gone
  server.wait_for("order 1: committed");
  server.signal(SIGTERM);
  EXPECT_EQ(server.wait_exit(), 0);
}
