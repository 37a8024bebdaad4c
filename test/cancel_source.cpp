// Tests for arc/cancel_source.hpp: the first reason sticks, requests are
// counted, the source is level-triggered and safe to cancel from any thread.
#include <arc/cancel_source.hpp>

#include <arc/bind_cancel.hpp>
#include <arc/error.hpp>

#include "test_util.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <barrier>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using boost::system::error_code;

namespace {

// A minimal operation that records what happens to its cancellation slot: it
// never completes by itself, only when cancelled.
struct probe_state
{
  bool initiating = false;
  bool emitted_during_initiation = false;
  int emits = 0;
  asio::cancellation_type_t last_type = asio::cancellation_type::none;
  std::thread::id emit_thread;
};

// The initiation exposes the I/O executor, as Asio's own I/O objects do.
struct initiate_probe
{
  using executor_type = asio::io_context::executor_type;
  asio::io_context* ctx;
  probe_state* st;
  bool expose_executor = true;

  executor_type get_executor() const noexcept { return ctx->get_executor(); }

  template <typename Handler>
  void operator()(Handler handler) const
  {
    st->initiating = true;
    auto slot = asio::get_associated_cancellation_slot(handler);
    auto* h = new Handler(std::move(handler));
    slot.assign(
        [ctx = ctx, st = st, h](asio::cancellation_type_t t)
        {
          ++st->emits;
          st->last_type = t;
          st->emit_thread = std::this_thread::get_id();
          if (st->initiating)
            st->emitted_during_initiation = true;
          // Complete through the I/O executor, never inside the emit.
          asio::post(*ctx, [h] {
            std::unique_ptr<Handler> own(h);
            (*own)(asio::error::operation_aborted);
          });
        });
    st->initiating = false;
  }
};

template <typename Token>
auto async_probe(asio::io_context& ctx, probe_state& st, Token&& token)
{
  return asio::async_initiate<Token, void(error_code)>(initiate_probe{&ctx, &st}, token);
}

// The same operation, written as a lambda: it exposes no executor.
template <typename Token>
auto async_probe_without_executor(asio::io_context& ctx, probe_state& st, Token&& token)
{
  return asio::async_initiate<Token, void(error_code)>(
      [&ctx, &st](auto handler) { initiate_probe{&ctx, &st}(std::move(handler)); }, token);
}

} // namespace

TEST(cancel_source, first_reason_sticks_and_later_requests_are_counted)
{
  arc::cancel_source src;
  const auto r1 = arc::reason::user("first");
  const auto r2 = arc::reason::shutdown("second");
  EXPECT_TRUE(src.cancel(r1));
  EXPECT_FALSE(src.cancel(r2));
  EXPECT_EQ(src.reason(), r1);
  EXPECT_EQ(src.requests(), 2u);
  const auto h = src.history();
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h[0], r1);
  EXPECT_EQ(h[1], r2);
}

TEST(cancel_source, a_new_source_is_not_cancelled)
{
  arc::cancel_source src;
  EXPECT_FALSE(src.cancelled());
  EXPECT_TRUE(src.reason().empty());
  EXPECT_EQ(src.requests(), 0u);
  EXPECT_TRUE(src.history().empty());
}

TEST(cancel_source, history_keeps_the_most_recent_requests_oldest_first)
{
  arc::cancel_source src(arc::cancel_source_options{.history_limit = 3});
  std::vector<arc::cancel_reason> rs;
  for (int i = 0; i < 5; ++i)
  {
    rs.push_back(arc::reason::user(std::to_string(i)));
    src.cancel(rs.back());
  }
  EXPECT_EQ(src.reason(), rs[0]);
  EXPECT_EQ(src.requests(), 5u);
  const auto h = src.history();
  ASSERT_EQ(h.size(), 3u);
  EXPECT_EQ(h[0], rs[2]);
  EXPECT_EQ(h[1], rs[3]);
  EXPECT_EQ(h[2], rs[4]);
}

TEST(cancel_source, plain_cancel_records_a_user_reason_at_the_callers_line)
{
  arc::cancel_source src;
  const int line = __LINE__; src.cancel();
  const auto r = src.reason();
  EXPECT_EQ(r.kind(), arc::reason_kind::user);
  EXPECT_EQ(r.where().line(), static_cast<unsigned>(line));
  EXPECT_NE(std::string_view(r.where().file_name()).find("cancel_source.cpp"), std::string_view::npos);
}

TEST(cancel_source, an_empty_reason_is_recorded_as_unspecified)
{
  arc::cancel_source src;
  src.cancel(arc::cancel_reason());
  EXPECT_EQ(src.reason().kind(), arc::reason_kind::unspecified);
  EXPECT_EQ(src.reason(), arc::reason::unspecified());
}

TEST(cancel_source, copies_share_one_state)
{
  arc::cancel_source a;
  arc::cancel_source b = a;
  EXPECT_EQ(a, b);
  b.cancel(arc::reason::user("via copy"));
  EXPECT_TRUE(a.cancelled());
  EXPECT_EQ(a.reason().message(), "via copy");
  EXPECT_NE(a, arc::cancel_source());
}

TEST(cancel_source, cancel_on_a_source_with_nothing_bound_only_records)
{
  arc::cancel_source src;
  EXPECT_TRUE(src.cancel(arc::reason::user("nobody listens")));
  EXPECT_TRUE(src.cancelled());
  EXPECT_EQ(src.requests(), 1u);
}

TEST(cancel_source, cancel_reaches_a_pending_timer_with_every_cancellation_type)
{
  for (auto type : {asio::cancellation_type::terminal, asio::cancellation_type::partial,
           asio::cancellation_type::total})
  {
    asio::io_context ctx;
    arc::cancel_source src;
    asio::steady_timer timer(ctx, 1h);
    int calls = 0;
    error_code result;
    arc::cancel_reason seen;
    timer.async_wait(arc::with_reason(src,
        [&](error_code ec, arc::cancel_reason r)
        {
          ++calls;
          result = ec;
          seen = r;
        }));
    const auto why = arc::reason::user("typed");
    asio::post(ctx, [&] { src.cancel(why, type); });
    arc_test::run_until(ctx, [&] { return calls > 0; });
    ctx.run();
    EXPECT_EQ(calls, 1);
    EXPECT_EQ(result, asio::error::operation_aborted);
    EXPECT_EQ(seen, why);
  }
}

TEST(cancel_source, the_cancellation_type_reaches_the_operation_unchanged)
{
  for (auto type : {asio::cancellation_type::terminal, asio::cancellation_type::partial,
           asio::cancellation_type::total})
  {
    asio::io_context ctx;
    arc::cancel_source src;
    probe_state st;
    int calls = 0;
    async_probe(ctx, st, arc::bind_cancel(src, [&](error_code) { ++calls; }));
    src.cancel(arc::reason::user(), type);
    ctx.run();
    EXPECT_EQ(calls, 1);
    EXPECT_EQ(st.last_type, type);
  }
}

TEST(cancel_source, an_operation_bound_after_the_cancel_is_cancelled_right_after_it_starts)
{
  asio::io_context ctx;
  arc::cancel_source src;
  const auto why = arc::reason::user("early");
  src.cancel(why);

  probe_state st;
  int calls = 0;
  async_probe(ctx, st, arc::bind_cancel(src, [&](error_code ec) {
    ++calls;
    EXPECT_EQ(ec, asio::error::operation_aborted);
  }));
  // Nothing is delivered inside the initiating function...
  EXPECT_EQ(st.emits, 0);
  EXPECT_EQ(calls, 0);
  ctx.run();
  // ...but right after it, through the executor.
  EXPECT_EQ(st.emits, 1);
  EXPECT_FALSE(st.emitted_during_initiation);
  EXPECT_EQ(calls, 1);
}

TEST(cancel_source, a_timer_started_after_the_cancel_is_aborted_not_left_waiting)
{
  asio::io_context ctx;
  arc::cancel_source src;
  src.cancel(arc::reason::user("already"));
  asio::steady_timer timer(ctx, 1h);
  error_code result;
  arc::cancel_reason seen;
  int calls = 0;
  timer.async_wait(arc::with_reason(src, [&](error_code ec, arc::cancel_reason r) {
    ++calls;
    result = ec;
    seen = r;
  }));
  arc_test::run_until(ctx, [&] { return calls > 0; });
  EXPECT_EQ(result, asio::error::operation_aborted);
  EXPECT_EQ(seen.message(), "already");
}

TEST(cancel_source, cancel_after_completion_calls_nothing_and_is_recorded)
{
  asio::io_context ctx;
  arc::cancel_source src;
  int calls = 0;
  error_code result = asio::error::would_block;
  {
    asio::steady_timer timer(ctx, 0ms);
    timer.async_wait(arc::bind_cancel(src, [&](error_code ec) {
      ++calls;
      result = ec;
    }));
    ctx.run();
  } // the timer, whose cancellation handler Asio leaves installed, is gone
  ctx.restart();
  EXPECT_TRUE(src.cancel(arc::reason::user("too late")));
  ctx.run();
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(result);
  EXPECT_EQ(src.requests(), 1u);
}

TEST(cancel_source, destroying_the_source_while_an_operation_is_pending_lets_it_complete_normally)
{
  asio::io_context ctx;
  asio::steady_timer timer(ctx, 1ms);
  int calls = 0;
  error_code result = asio::error::would_block;
  {
    arc::cancel_source src;
    timer.async_wait(arc::bind_cancel(src, [&](error_code ec) {
      ++calls;
      result = ec;
    }));
  }
  arc_test::run_until(ctx, [&] { return calls > 0; });
  ctx.run();
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(result);
}

TEST(cancel_source, two_operations_bound_to_one_source_are_both_cancelled_once)
{
  asio::io_context ctx;
  arc::cancel_source src;
  asio::steady_timer a(ctx, 1h), b(ctx, 1h);
  int calls_a = 0, calls_b = 0;
  a.async_wait(arc::bind_cancel(src, [&](error_code ec) {
    ++calls_a;
    EXPECT_EQ(ec, asio::error::operation_aborted);
  }));
  b.async_wait(arc::bind_cancel(src, [&](error_code ec) {
    ++calls_b;
    EXPECT_EQ(ec, asio::error::operation_aborted);
  }));
  asio::post(ctx, [&] { src.cancel(arc::reason::user("both")); });
  ctx.run();
  EXPECT_EQ(calls_a, 1);
  EXPECT_EQ(calls_b, 1);
}

TEST(cancel_source, a_child_is_cancelled_as_parent_of_the_parents_reason)
{
  arc::cancel_source parent;
  arc::cancel_source child = parent.make_child();
  arc::cancel_source grandchild = child.make_child();
  const auto why = arc::reason::shutdown("stop");
  parent.cancel(why);
  ASSERT_TRUE(child.cancelled());
  EXPECT_EQ(child.reason().kind(), arc::reason_kind::parent);
  EXPECT_EQ(child.reason().cause(), why);
  EXPECT_EQ(grandchild.reason().kind(), arc::reason_kind::parent);
  EXPECT_EQ(grandchild.reason().cause().cause(), why);
  EXPECT_EQ(grandchild.reason().root(), why);
}

TEST(cancel_source, a_child_of_a_cancelled_source_starts_cancelled)
{
  arc::cancel_source parent;
  const auto why = arc::reason::user("before");
  parent.cancel(why);
  arc::cancel_source child = parent.make_child();
  EXPECT_TRUE(child.cancelled());
  EXPECT_EQ(child.reason().cause(), why);
}

TEST(cancel_source, cancelling_a_child_leaves_the_parent_alone)
{
  arc::cancel_source parent;
  arc::cancel_source child = parent.make_child();
  child.cancel(arc::reason::user("child only"));
  EXPECT_FALSE(parent.cancelled());
  EXPECT_EQ(parent.requests(), 0u);
}

TEST(cancel_source, a_child_outlives_its_parent_handle)
{
  arc::cancel_source child = arc::cancel_source().make_child();
  EXPECT_FALSE(child.cancelled());
  child.cancel(arc::reason::user("orphan"));
  EXPECT_EQ(child.reason().message(), "orphan");
}

TEST(cancel_source, slot_gives_each_operation_its_own_node)
{
  asio::io_context ctx;
  arc::cancel_source src(ctx);
  asio::steady_timer a(ctx, 1h), b(ctx, 1h);
  int calls = 0;
  arc::cancel_reason seen_a;
  auto sa = src.slot();
  a.async_wait(asio::bind_cancellation_slot(sa, [&](error_code ec) {
    ++calls;
    EXPECT_EQ(ec, asio::error::operation_aborted);
  }));
  b.async_wait(asio::bind_cancellation_slot(src.slot(), [&](error_code ec) {
    ++calls;
    EXPECT_EQ(ec, asio::error::operation_aborted);
  }));
  const auto why = arc::reason::user("via slot");
  asio::post(ctx, [&] { src.cancel(why); });
  ctx.run();
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(sa.reason(), why);
}

TEST(cancel_source, slot_without_an_executor_is_refused_with_no_executor)
{
  arc::cancel_source src;
  try
  {
    (void)src.slot();
    FAIL() << "slot() should throw";
  }
  catch (const boost::system::system_error& e)
  {
    EXPECT_EQ(e.code(), arc::error::no_executor);
  }
}

TEST(cancel_source, slot_of_a_cancelled_source_cancels_the_operation_after_it_starts)
{
  asio::io_context ctx;
  arc::cancel_source src(ctx);
  src.cancel(arc::reason::user("early"));
  asio::steady_timer t(ctx, 1h);
  int calls = 0;
  t.async_wait(asio::bind_cancellation_slot(src.slot(), [&](error_code ec) {
    ++calls;
    EXPECT_EQ(ec, asio::error::operation_aborted);
  }));
  EXPECT_EQ(calls, 0);
  ctx.run();
  EXPECT_EQ(calls, 1);
}

TEST(cancel_source, cancel_from_a_foreign_thread_is_delivered_on_the_operations_executor)
{
  asio::io_context ctx;
  arc::cancel_source src;
  probe_state st;
  int calls = 0;
  auto work = asio::make_work_guard(ctx); // the probe, unlike Asio's ops, holds no work
  async_probe(ctx, st, arc::bind_cancel(src, [&](error_code) { ++calls; }));
  std::thread canceller([&] { src.cancel(arc::reason::user("from afar")); });
  arc_test::run_until(ctx, [&] { return calls > 0; });
  canceller.join();
  work.reset();
  EXPECT_EQ(st.emits, 1);
  EXPECT_EQ(st.emit_thread, std::this_thread::get_id());
}

// R6, run under TSan: four threads cancel at once while the operation runs on
// the io_context's thread.
TEST(cancel_source, concurrent_cancel_from_four_threads_keeps_the_first_reason_and_completes_once)
{
  for (int round = 0; round < 20; ++round)
  {
    asio::io_context ctx;
    arc::cancel_source src;
    asio::steady_timer timer(ctx, 1h);
    std::atomic<int> calls{0};
    timer.async_wait(arc::bind_cancel(src, [&](error_code ec) {
      ++calls;
      EXPECT_EQ(ec, asio::error::operation_aborted);
    }));
    std::barrier start(5);
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i)
      threads.emplace_back([&, i] {
        start.arrive_and_wait();
        src.cancel(arc::reason::user("thread " + std::to_string(i)));
      });
    std::thread runner([&] { ctx.run(); });
    start.arrive_and_wait();
    for (auto& t : threads)
      t.join();
    runner.join();
    EXPECT_EQ(calls.load(), 1);
    EXPECT_EQ(src.requests(), 4u);
    const auto h = src.history();
    ASSERT_EQ(h.size(), 4u);
    EXPECT_EQ(src.reason(), h.front());
  }
}

TEST(cancel_source, cancel_races_completion_on_a_thread_pool_and_each_handler_runs_once)
{
  asio::thread_pool pool(4);
  constexpr int n = 2000;
  std::atomic<int> calls{0};
  std::vector<arc::cancel_source> sources(n);
  std::vector<std::unique_ptr<asio::steady_timer>> timers;
  for (int i = 0; i < n; ++i)
  {
    auto strand = asio::make_strand(pool);
    timers.push_back(std::make_unique<asio::steady_timer>(strand, std::chrono::microseconds(i % 50)));
    asio::post(strand, [&, i, t = timers.back().get()] {
      t->async_wait(arc::bind_cancel(sources[i], [&](error_code) { ++calls; }));
    });
  }
  std::thread canceller([&] {
    for (int i = 0; i < n; ++i)
      sources[i].cancel(arc::reason::user("race"));
  });
  canceller.join();
  pool.join();
  EXPECT_EQ(calls.load(), n);
}

TEST(cancel_source, without_an_operation_executor_emits_go_to_the_sources_executor)
{
  asio::io_context ctx;
  arc::cancel_source src(ctx);
  probe_state st;
  int calls = 0;
  async_probe_without_executor(ctx, st, arc::bind_cancel(src, [&](error_code) { ++calls; }));
  std::thread canceller([&] { src.cancel(arc::reason::user("from afar")); });
  canceller.join();
  arc_test::run_until(ctx, [&] { return calls > 0; });
  EXPECT_EQ(st.emits, 1);
  EXPECT_EQ(st.emit_thread, std::this_thread::get_id());
}

TEST(cancel_source, with_no_executor_anywhere_a_level_triggered_emit_follows_the_initiation_inline)
{
  asio::io_context ctx;
  arc::cancel_source src;
  src.cancel(arc::reason::user("early"));
  probe_state st;
  int calls = 0;
  async_probe_without_executor(ctx, st, arc::bind_cancel(src, [&](error_code) { ++calls; }));
  // Nowhere to post: delivered as Asio's own signal would, on this thread,
  // once the operation's initiation has returned.
  EXPECT_EQ(st.emits, 1);
  EXPECT_FALSE(st.emitted_during_initiation);
  EXPECT_EQ(calls, 0);
  ctx.run();
  EXPECT_EQ(calls, 1);
}
