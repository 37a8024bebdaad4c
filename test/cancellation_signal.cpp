// Tests for arc/cancellation_signal.hpp: Asio's signal/slot pair plus a reason.
// The slot must work wherever Asio takes a cancellation slot: leaf I/O
// operations, async_compose, co_spawn and parallel_group.
#include <arc/cancellation_signal.hpp>

#include "test_util.hpp"

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/connect_pair.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using boost::system::error_code;

namespace {

// What happened to one cancellation handler.
struct probe_counts
{
  int calls = 0;
  int destroyed = 0;
  asio::cancellation_type_t last = asio::cancellation_type::none;
  arc::cancel_reason reason_seen; // the signal's reason at the time of the call
  bool misaligned = false;
  bool corrupted = false;
};

// A cancellation handler that counts its calls and its destruction. A
// moved-from probe is a husk and counts nothing.
struct probe
{
  probe_counts* counts;
  const arc::cancellation_signal* sig = nullptr;

  explicit probe(probe_counts& c, const arc::cancellation_signal* s = nullptr) : counts(&c), sig(s) {}
  probe(probe&& other) noexcept : counts(std::exchange(other.counts, nullptr)), sig(other.sig) {}
  probe(const probe&) = delete;
  probe& operator=(const probe&) = delete;
  probe& operator=(probe&&) = delete;
  ~probe()
  {
    if (counts)
      ++counts->destroyed;
  }

  void operator()(asio::cancellation_type_t type)
  {
    ++counts->calls;
    counts->last = type;
    if (sig)
      counts->reason_seen = sig->reason();
  }
};

// Too big for the inline buffer: lives on the heap.
struct big_probe
{
  static constexpr std::size_t payload_size = 200;
  probe p;
  std::array<unsigned char, payload_size> payload;

  explicit big_probe(probe_counts& c) : p(c)
  {
    for (std::size_t i = 0; i < payload_size; ++i)
      payload[i] = static_cast<unsigned char>(i * 7 + 1);
  }

  void operator()(asio::cancellation_type_t type)
  {
    for (std::size_t i = 0; i < payload_size; ++i)
      if (payload[i] != static_cast<unsigned char>(i * 7 + 1))
        p.counts->corrupted = true;
    p(type);
  }
};
static_assert(sizeof(big_probe) > 64);

// Over-aligned: must land on a 64-byte boundary.
struct alignas(64) aligned_probe
{
  probe p;

  explicit aligned_probe(probe_counts& c) : p(c) {}

  void operator()(asio::cancellation_type_t type)
  {
    if (reinterpret_cast<std::uintptr_t>(this) % 64 != 0)
      p.counts->misaligned = true;
    p(type);
  }
};

// One completion of an operation.
struct completion
{
  int calls = 0;
  error_code ec;
};

auto record(completion& c)
{
  return [&c](error_code ec)
  {
    ++c.calls;
    c.ec = ec;
  };
}

// Runs whatever is ready without waiting, so a late or duplicate completion
// would be seen.
void drain(asio::io_context& ctx)
{
  ctx.restart();
  ctx.poll();
}

// Waits on a timer and completes with operation_aborted if it was cancelled,
// forwarding the cancellation from its own slot to the timer.
struct timer_wait_op
{
  asio::steady_timer& timer;
  asio::cancellation_type_t* seen;
  bool started = false;

  template <typename Self>
  void operator()(Self& self, error_code ec = {})
  {
    if (!started)
    {
      started = true;
      timer.expires_after(1h);
      timer.async_wait(std::move(self));
      return;
    }
    *seen = self.get_cancellation_state().cancelled();
    if (*seen != asio::cancellation_type::none)
      ec = asio::error::operation_aborted;
    self.complete(ec);
  }
};

template <typename Token>
auto async_timer_wait(asio::steady_timer& timer, asio::cancellation_type_t& seen, Token&& token)
{
  return asio::async_compose<Token, void(error_code)>(
      timer_wait_op{timer, &seen}, token, timer);
}

} // namespace

// --- The slot as Asio sees it -------------------------------------------------

TEST(cancellation_signal, the_slot_is_the_associated_cancellation_slot_of_a_bound_handler)
{
  arc::cancellation_signal sig;
  auto handler = [](error_code) {};
  using bound = decltype(asio::bind_cancellation_slot(sig.slot(), handler));
  static_assert(std::is_same_v<asio::associated_cancellation_slot_t<bound>, arc::cancellation_slot>);
  const auto b = asio::bind_cancellation_slot(sig.slot(), handler);
  EXPECT_EQ(asio::get_associated_cancellation_slot(b), sig.slot());
}

TEST(cancellation_slot, a_default_slot_is_not_connected_and_has_nothing)
{
  arc::cancellation_slot slot;
  EXPECT_FALSE(slot.is_connected());
  EXPECT_FALSE(slot.has_handler());
  EXPECT_TRUE(slot.reason().empty());
  slot.clear();
  EXPECT_FALSE(slot.has_handler());
  EXPECT_EQ(slot, arc::cancellation_slot());
}

TEST(cancellation_slot, slots_of_one_signal_are_equal_and_of_two_signals_are_not)
{
  arc::cancellation_signal a;
  arc::cancellation_signal b;
  EXPECT_TRUE(a.slot().is_connected());
  EXPECT_EQ(a.slot(), a.slot());
  EXPECT_NE(a.slot(), b.slot());
  EXPECT_NE(a.slot(), arc::cancellation_slot());
}

TEST(cancellation_slot, has_handler_follows_emplace_and_clear)
{
  arc::cancellation_signal sig;
  probe_counts counts;
  auto slot = sig.slot();
  EXPECT_FALSE(slot.has_handler());
  slot.emplace<probe>(counts);
  EXPECT_TRUE(slot.has_handler());
  EXPECT_TRUE(sig.slot().has_handler()) << "every copy of the slot sees the handler";
  slot.clear();
  EXPECT_FALSE(slot.has_handler());
  EXPECT_EQ(counts.calls, 0);
  EXPECT_EQ(counts.destroyed, 1);
}

// --- emit ---------------------------------------------------------------------

TEST(cancellation_signal, an_emit_with_a_reason_reaches_the_handler_and_is_recorded)
{
  arc::cancellation_signal sig;
  probe_counts counts;
  sig.slot().emplace<probe>(counts, &sig);
  const auto why = arc::reason::user("stop");
  sig.emit(why, asio::cancellation_type::terminal);
  EXPECT_EQ(counts.calls, 1);
  EXPECT_EQ(counts.last, asio::cancellation_type::terminal);
  EXPECT_EQ(counts.reason_seen, why) << "the reason is recorded before the handler runs";
  EXPECT_EQ(sig.reason(), why);
  EXPECT_EQ(sig.slot().reason(), why);
}

TEST(cancellation_signal, the_handler_receives_the_emitted_type)
{
  for (auto type : {asio::cancellation_type::terminal, asio::cancellation_type::partial,
           asio::cancellation_type::total})
  {
    arc::cancellation_signal sig;
    probe_counts counts;
    sig.slot().emplace<probe>(counts);
    sig.emit(arc::reason::user(), type);
    EXPECT_EQ(counts.calls, 1);
    EXPECT_EQ(counts.last, type);
  }
}

TEST(cancellation_signal, an_emit_without_a_reason_records_unspecified)
{
  arc::cancellation_signal sig;
  probe_counts counts;
  sig.slot().emplace<probe>(counts, &sig);
  sig.emit(asio::cancellation_type::terminal);
  EXPECT_EQ(counts.calls, 1);
  EXPECT_EQ(counts.reason_seen, arc::reason::unspecified());
  EXPECT_EQ(sig.reason(), arc::reason::unspecified());
  EXPECT_EQ(sig.reason().kind(), arc::reason_kind::unspecified);
}

TEST(cancellation_signal, an_emit_with_no_handler_calls_nothing_and_records_nothing)
{
  arc::cancellation_signal sig;
  sig.emit(arc::reason::user("lost"), asio::cancellation_type::terminal);
  EXPECT_TRUE(sig.reason().empty());
  EXPECT_TRUE(sig.slot().reason().empty());
  sig.emit(asio::cancellation_type::terminal);
  EXPECT_TRUE(sig.reason().empty());
}

TEST(cancellation_signal, an_emit_after_clear_calls_nothing_and_keeps_the_previous_reason)
{
  arc::cancellation_signal sig;
  probe_counts counts;
  sig.slot().emplace<probe>(counts);
  const auto first = arc::reason::user("first");
  sig.emit(first, asio::cancellation_type::terminal);
  sig.slot().clear();
  sig.emit(arc::reason::user("second"), asio::cancellation_type::terminal);
  EXPECT_EQ(counts.calls, 1);
  EXPECT_EQ(sig.reason(), first);
}

TEST(cancellation_signal, every_emit_reaching_a_handler_calls_it_and_records_its_reason)
{
  arc::cancellation_signal sig;
  probe_counts counts;
  sig.slot().emplace<probe>(counts, &sig);
  const auto first = arc::reason::user("first");
  const auto second = arc::reason::shutdown("second");
  sig.emit(first, asio::cancellation_type::partial);
  EXPECT_EQ(counts.reason_seen, first);
  sig.emit(second, asio::cancellation_type::terminal);
  EXPECT_EQ(counts.calls, 2);
  EXPECT_EQ(counts.last, asio::cancellation_type::terminal);
  EXPECT_EQ(counts.reason_seen, second);
  EXPECT_EQ(sig.reason(), second);
  sig.emit(second, asio::cancellation_type::terminal);
  EXPECT_EQ(counts.calls, 3);
  EXPECT_EQ(sig.reason(), second);
}

TEST(cancellation_signal, emitting_its_own_reason_again_keeps_it)
{
  arc::cancellation_signal sig;
  probe_counts counts;
  sig.slot().emplace<probe>(counts);
  const auto why = arc::reason::user("stop");
  sig.emit(why, asio::cancellation_type::terminal);
  sig.emit(sig.reason(), asio::cancellation_type::terminal);
  EXPECT_EQ(counts.calls, 2);
  EXPECT_EQ(sig.reason(), why);
  EXPECT_EQ(sig.reason().message(), "stop");
}

// --- Handler storage ----------------------------------------------------------

TEST(cancellation_slot, emplace_replaces_the_old_handler_destroying_it_once_without_calling_it)
{
  arc::cancellation_signal sig;
  probe_counts old_counts;
  probe_counts new_counts;
  {
    sig.slot().emplace<probe>(old_counts);
    sig.slot().emplace<probe>(new_counts);
    EXPECT_EQ(old_counts.destroyed, 1);
    EXPECT_EQ(old_counts.calls, 0);
    EXPECT_EQ(new_counts.destroyed, 0);
    sig.emit(arc::reason::user(), asio::cancellation_type::terminal);
    EXPECT_EQ(old_counts.calls, 0);
    EXPECT_EQ(new_counts.calls, 1);
  }
  sig.slot().clear();
  EXPECT_EQ(old_counts.destroyed, 1);
  EXPECT_EQ(new_counts.destroyed, 1);
}

TEST(cancellation_slot, assign_installs_a_moved_handler)
{
  arc::cancellation_signal sig;
  probe_counts counts;
  auto& installed = sig.slot().assign(probe(counts));
  static_assert(std::is_same_v<decltype(installed), probe&>);
  EXPECT_EQ(installed.counts, &counts);
  EXPECT_EQ(counts.destroyed, 0) << "only the moved-from temporary was destroyed";
  sig.emit(arc::reason::user(), asio::cancellation_type::total);
  EXPECT_EQ(counts.calls, 1);
  EXPECT_EQ(counts.last, asio::cancellation_type::total);
  sig.slot().clear();
  EXPECT_EQ(counts.destroyed, 1);
}

TEST(cancellation_slot, assign_accepts_a_lambda)
{
  arc::cancellation_signal sig;
  int calls = 0;
  sig.slot().assign([&calls](asio::cancellation_type_t) { ++calls; });
  sig.emit(asio::cancellation_type::terminal);
  EXPECT_EQ(calls, 1);
}

TEST(cancellation_slot, emplace_returns_the_installed_handler)
{
  arc::cancellation_signal sig;
  probe_counts counts;
  auto& installed = sig.slot().emplace<probe>(counts);
  probe_counts other;
  installed.counts = &other; // the handler the signal calls is this one
  sig.emit(asio::cancellation_type::terminal);
  EXPECT_EQ(counts.calls, 0);
  EXPECT_EQ(other.calls, 1);
}

TEST(cancellation_slot, clear_destroys_the_handler_without_calling_it)
{
  arc::cancellation_signal sig;
  probe_counts counts;
  sig.slot().emplace<probe>(counts);
  sig.slot().clear();
  EXPECT_EQ(counts.destroyed, 1);
  EXPECT_EQ(counts.calls, 0);
  sig.slot().clear();
  EXPECT_EQ(counts.destroyed, 1) << "a second clear has nothing to destroy";
}

TEST(cancellation_slot, an_emplace_whose_handler_throws_leaves_no_handler_installed)
{
  struct throwing_handler
  {
    explicit throwing_handler(int) { throw std::runtime_error("no"); }
    void operator()(asio::cancellation_type_t) {}
  };
  arc::cancellation_signal sig;
  probe_counts counts;
  sig.slot().emplace<probe>(counts);
  EXPECT_THROW(sig.slot().emplace<throwing_handler>(1), std::runtime_error);
  EXPECT_FALSE(sig.slot().has_handler());
  EXPECT_EQ(counts.destroyed, 1);
  sig.emit(arc::reason::user(), asio::cancellation_type::terminal);
  EXPECT_EQ(counts.calls, 0);
  EXPECT_TRUE(sig.reason().empty());

  // The slot is still usable.
  probe_counts next;
  sig.slot().emplace<probe>(next);
  sig.emit(asio::cancellation_type::terminal);
  EXPECT_EQ(next.calls, 1);
}

TEST(cancellation_signal, destroying_the_signal_destroys_the_handler_without_calling_it)
{
  probe_counts counts;
  {
    arc::cancellation_signal sig;
    sig.slot().emplace<probe>(counts);
  }
  EXPECT_EQ(counts.destroyed, 1);
  EXPECT_EQ(counts.calls, 0);
}

TEST(cancellation_slot, a_handler_bigger_than_the_inline_buffer_works)
{
  probe_counts counts;
  {
    arc::cancellation_signal sig;
    sig.slot().emplace<big_probe>(counts);
    sig.emit(arc::reason::user(), asio::cancellation_type::partial);
    EXPECT_EQ(counts.calls, 1);
    EXPECT_EQ(counts.last, asio::cancellation_type::partial);
    EXPECT_FALSE(counts.corrupted);
  }
  EXPECT_EQ(counts.destroyed, 1);
}

TEST(cancellation_slot, small_and_big_handlers_can_replace_each_other)
{
  probe_counts c1, c2, c3, c4;
  {
    arc::cancellation_signal sig;
    sig.slot().emplace<big_probe>(c1);
    sig.slot().emplace<probe>(c2);
    sig.slot().emplace<big_probe>(c3);
    sig.emit(asio::cancellation_type::terminal);
    sig.slot().emplace<aligned_probe>(c4);
    sig.emit(asio::cancellation_type::terminal);
    EXPECT_EQ(c1.destroyed, 1);
    EXPECT_EQ(c2.destroyed, 1);
    EXPECT_EQ(c3.destroyed, 1);
    EXPECT_EQ(c4.destroyed, 0);
  }
  EXPECT_EQ(c1.calls + c2.calls, 0);
  EXPECT_EQ(c3.calls, 1);
  EXPECT_FALSE(c3.corrupted);
  EXPECT_EQ(c4.calls, 1);
  EXPECT_FALSE(c4.misaligned);
  EXPECT_EQ(c4.destroyed, 1);
}

TEST(cancellation_slot, an_over_aligned_handler_is_placed_on_its_alignment)
{
  probe_counts counts;
  {
    arc::cancellation_signal sig;
    auto& installed = sig.slot().emplace<aligned_probe>(counts);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(&installed) % 64, 0u);
    sig.emit(asio::cancellation_type::terminal);
    EXPECT_EQ(counts.calls, 1);
    EXPECT_FALSE(counts.misaligned);
  }
  EXPECT_EQ(counts.destroyed, 1);
}

// --- Real Asio operations -----------------------------------------------------

TEST(cancellation_signal, an_emit_cancels_a_bound_timer_wait)
{
  asio::io_context ctx;
  arc::cancellation_signal sig;
  asio::steady_timer timer(ctx, 1h);
  completion done;
  timer.async_wait(asio::bind_cancellation_slot(sig.slot(), record(done)));
  EXPECT_TRUE(sig.slot().has_handler());

  const auto why = arc::reason::user("stop");
  sig.emit(why, asio::cancellation_type::terminal);
  arc_test::run_until(ctx, [&] { return done.calls > 0; });
  drain(ctx);

  EXPECT_EQ(done.calls, 1);
  EXPECT_EQ(done.ec, asio::error::operation_aborted);
  EXPECT_EQ(sig.reason(), why);
  EXPECT_EQ(sig.slot().reason(), why);
}

namespace {

void expect_type_cancels_a_timer_wait(asio::cancellation_type_t type)
{
  asio::io_context ctx;
  arc::cancellation_signal sig;
  asio::steady_timer timer(ctx, 1h);
  completion done;
  timer.async_wait(asio::bind_cancellation_slot(sig.slot(), record(done)));
  const auto why = arc::reason::shutdown("bye");
  sig.emit(why, type);
  arc_test::run_until(ctx, [&] { return done.calls > 0; });
  drain(ctx);
  EXPECT_EQ(done.calls, 1);
  EXPECT_EQ(done.ec, asio::error::operation_aborted);
  EXPECT_EQ(sig.reason(), why);
}

} // namespace

TEST(cancellation_signal, terminal_cancels_a_timer_wait)
{
  expect_type_cancels_a_timer_wait(asio::cancellation_type::terminal);
}

TEST(cancellation_signal, partial_cancels_a_timer_wait)
{
  expect_type_cancels_a_timer_wait(asio::cancellation_type::partial);
}

TEST(cancellation_signal, total_cancels_a_timer_wait)
{
  expect_type_cancels_a_timer_wait(asio::cancellation_type::total);
}

TEST(cancellation_signal, a_timer_wait_that_expires_is_not_touched_by_the_slot)
{
  asio::io_context ctx;
  arc::cancellation_signal sig;
  asio::steady_timer timer(ctx, asio::steady_timer::clock_type::now());
  completion done;
  timer.async_wait(asio::bind_cancellation_slot(sig.slot(), record(done)));
  arc_test::run_until(ctx, [&] { return done.calls > 0; });
  drain(ctx);
  EXPECT_EQ(done.calls, 1);
  EXPECT_FALSE(done.ec);
  EXPECT_TRUE(sig.reason().empty());
}

TEST(cancellation_signal, an_emit_cancels_a_socket_read_that_gets_no_data)
{
  asio::io_context ctx;
  arc::cancellation_signal sig;
  asio::local::stream_protocol::socket reader(ctx);
  asio::local::stream_protocol::socket writer(ctx);
  asio::local::connect_pair(reader, writer);
  std::array<char, 16> buf{};
  int calls = 0;
  error_code result;
  std::size_t bytes = 1;
  reader.async_read_some(asio::buffer(buf),
      asio::bind_cancellation_slot(sig.slot(),
          [&](error_code ec, std::size_t n)
          {
            ++calls;
            result = ec;
            bytes = n;
          }));
  ASSERT_TRUE(sig.slot().has_handler());

  const auto why = arc::reason::signal(15);
  sig.emit(why, asio::cancellation_type::terminal);
  arc_test::run_until(ctx, [&] { return calls > 0; });
  drain(ctx);

  EXPECT_EQ(calls, 1);
  EXPECT_EQ(result, asio::error::operation_aborted);
  EXPECT_EQ(bytes, 0u);
  EXPECT_EQ(sig.reason(), why);
}

TEST(cancellation_signal, an_emit_cancels_a_composed_async_read)
{
  asio::io_context ctx;
  arc::cancellation_signal sig;
  asio::local::stream_protocol::socket reader(ctx);
  asio::local::stream_protocol::socket writer(ctx);
  asio::local::connect_pair(reader, writer);
  std::array<char, 16> buf{};
  int calls = 0;
  error_code result;
  asio::async_read(reader, asio::buffer(buf),
      asio::bind_cancellation_slot(sig.slot(),
          [&](error_code ec, std::size_t)
          {
            ++calls;
            result = ec;
          }));
  ASSERT_TRUE(sig.slot().has_handler());

  const auto why = arc::reason::user("enough");
  sig.emit(why, asio::cancellation_type::terminal);
  arc_test::run_until(ctx, [&] { return calls > 0; });
  drain(ctx);

  EXPECT_EQ(calls, 1);
  EXPECT_EQ(result, asio::error::operation_aborted);
  EXPECT_EQ(sig.reason(), why);
}

TEST(cancellation_signal, an_emit_cancels_an_async_compose_operation_that_forwards_it)
{
  asio::io_context ctx;
  arc::cancellation_signal sig;
  asio::steady_timer timer(ctx);
  asio::cancellation_type_t seen = asio::cancellation_type::none;
  completion done;
  async_timer_wait(timer, seen, asio::bind_cancellation_slot(sig.slot(), record(done)));
  ASSERT_TRUE(sig.slot().has_handler());

  const auto why = arc::reason::user("stop");
  sig.emit(why, asio::cancellation_type::terminal);
  arc_test::run_until(ctx, [&] { return done.calls > 0; });
  drain(ctx);

  EXPECT_EQ(done.calls, 1);
  EXPECT_EQ(done.ec, asio::error::operation_aborted);
  EXPECT_EQ(seen, asio::cancellation_type::terminal);
  EXPECT_EQ(sig.reason(), why);
}

TEST(cancellation_signal, an_emit_cancels_a_coroutine_started_by_asio_co_spawn)
{
  asio::io_context ctx;
  arc::cancellation_signal sig;
  bool waiting = false;
  int calls = 0;
  error_code result;
  asio::co_spawn(
      ctx,
      [&]() -> asio::awaitable<void>
      {
        asio::steady_timer timer(co_await asio::this_coro::executor, 1h);
        waiting = true;
        co_await timer.async_wait(asio::use_awaitable);
      },
      asio::bind_cancellation_slot(sig.slot(),
          [&](std::exception_ptr e)
          {
            ++calls;
            try
            {
              if (e)
                std::rethrow_exception(e);
            }
            catch (const boost::system::system_error& se)
            {
              result = se.code();
            }
          }));
  ASSERT_TRUE(sig.slot().has_handler());
  arc_test::run_until(ctx, [&] { return waiting; });
  ASSERT_EQ(calls, 0);

  const auto why = arc::reason::shutdown("stop");
  sig.emit(why, asio::cancellation_type::terminal);
  arc_test::run_until(ctx, [&] { return calls > 0; });
  drain(ctx);

  EXPECT_EQ(calls, 1);
  EXPECT_EQ(result, asio::error::operation_aborted);
  EXPECT_EQ(sig.reason(), why);
}

TEST(cancellation_signal, an_emit_cancels_both_waits_of_a_parallel_group)
{
  asio::io_context ctx;
  arc::cancellation_signal sig;
  asio::steady_timer t1(ctx, 1h);
  asio::steady_timer t2(ctx, 1h);
  int calls = 0;
  error_code r1;
  error_code r2;
  asio::experimental::make_parallel_group(t1.async_wait(asio::deferred), t2.async_wait(asio::deferred))
      .async_wait(asio::experimental::wait_for_all(),
          asio::bind_cancellation_slot(sig.slot(),
              [&](std::array<std::size_t, 2>, error_code e1, error_code e2)
              {
                ++calls;
                r1 = e1;
                r2 = e2;
              }));
  ASSERT_TRUE(sig.slot().has_handler());

  const auto why = arc::reason::user("stop both");
  sig.emit(why, asio::cancellation_type::terminal);
  arc_test::run_until(ctx, [&] { return calls > 0; });
  drain(ctx);

  EXPECT_EQ(calls, 1);
  EXPECT_EQ(r1, asio::error::operation_aborted);
  EXPECT_EQ(r2, asio::error::operation_aborted);
  EXPECT_EQ(sig.reason(), why);
}

// --- Misuse -------------------------------------------------------------------

TEST(cancellation_signal, two_operations_bound_to_one_slot_leave_only_the_second_cancellable)
{
  asio::io_context ctx;
  arc::cancellation_signal sig;
  asio::steady_timer t1(ctx, 1h);
  asio::steady_timer t2(ctx, 1h);
  completion first;
  completion second;
  t1.async_wait(asio::bind_cancellation_slot(sig.slot(), record(first)));
  t2.async_wait(asio::bind_cancellation_slot(sig.slot(), record(second)));

  const auto why = arc::reason::user("stop");
  sig.emit(why, asio::cancellation_type::terminal);
  arc_test::run_until(ctx, [&] { return second.calls > 0; });
  drain(ctx);
  EXPECT_EQ(second.calls, 1);
  EXPECT_EQ(second.ec, asio::error::operation_aborted);
  EXPECT_EQ(first.calls, 0) << "the first operation's handler was replaced, so the emit missed it";
  EXPECT_EQ(sig.reason(), why);

  // The first operation is still pending; it ends only by its own means.
  t1.cancel();
  arc_test::run_until(ctx, [&] { return first.calls > 0; });
  drain(ctx);
  EXPECT_EQ(first.calls, 1);
  EXPECT_EQ(first.ec, asio::error::operation_aborted);
  EXPECT_EQ(second.calls, 1);
}

TEST(cancellation_signal, a_slot_reused_by_a_chain_of_operations_cancels_the_current_one)
{
  asio::io_context ctx;
  arc::cancellation_signal sig;
  asio::steady_timer timer(ctx, asio::steady_timer::clock_type::now());
  completion first;
  completion second;
  timer.async_wait(asio::bind_cancellation_slot(sig.slot(), record(first)));
  arc_test::run_until(ctx, [&] { return first.calls > 0; });
  EXPECT_FALSE(first.ec);

  timer.expires_after(1h);
  timer.async_wait(asio::bind_cancellation_slot(sig.slot(), record(second)));
  const auto why = arc::reason::user("stop");
  sig.emit(why, asio::cancellation_type::terminal);
  arc_test::run_until(ctx, [&] { return second.calls > 0; });
  drain(ctx);
  EXPECT_EQ(first.calls, 1);
  EXPECT_EQ(second.calls, 1);
  EXPECT_EQ(second.ec, asio::error::operation_aborted);
  EXPECT_EQ(sig.reason(), why);
}

// --- Regression tests: core second pass (issue 5) ---

namespace {

// What happened to a handler that calls back into its own slot.
struct reentry_counts
{
  int calls = 0;
  int destroyed = 0;
  int depth = 0;                   // > 0 while the handler runs
  bool destroyed_mid_call = false; // destroyed while it ran
};

// A cancellation handler that clears its own slot, or installs @p next in it,
// from inside its call. After doing so it touches only the counts, through a
// local copy of the pointer: never its own members. Padding makes it too big
// for the inline buffer.
template <std::size_t Padding>
struct reentrant_handler
{
  reentry_counts* counts;
  arc::cancellation_slot slot;
  probe_counts* next; // null: clear(); else emplace a probe counting into *next
  std::array<unsigned char, Padding> padding{};

  reentrant_handler(reentry_counts& c, arc::cancellation_slot s, probe_counts* n)
    : counts(&c), slot(s), next(n)
  {
  }
  reentrant_handler(reentrant_handler&& o) noexcept
    : counts(std::exchange(o.counts, nullptr)), slot(o.slot), next(o.next)
  {
  }
  reentrant_handler& operator=(reentrant_handler&&) = delete;
  ~reentrant_handler()
  {
    if (counts)
    {
      ++counts->destroyed;
      if (counts->depth > 0)
        counts->destroyed_mid_call = true;
    }
  }

  void operator()(asio::cancellation_type_t)
  {
    reentry_counts* c = counts;
    ++c->depth;
    ++c->calls;
    if (next)
      slot.emplace<probe>(*next);
    else
      slot.clear();
    --c->depth;
  }
};

template <std::size_t Padding>
void clear_from_inside_case()
{
  arc::cancellation_signal sig;
  reentry_counts c;
  sig.slot().emplace<reentrant_handler<Padding>>(c, sig.slot(), nullptr);
  const auto why = arc::reason::user("clear yourself");
  sig.emit(why, asio::cancellation_type::terminal);
  EXPECT_EQ(c.calls, 1);
  EXPECT_FALSE(c.destroyed_mid_call) << "clear() destroyed the handler while it ran";
  EXPECT_EQ(c.destroyed, 1);
  EXPECT_FALSE(sig.slot().has_handler());
  EXPECT_EQ(sig.reason(), why);
  sig.emit(arc::reason::user("nobody"), asio::cancellation_type::terminal);
  EXPECT_EQ(c.calls, 1);
  EXPECT_EQ(sig.reason(), why);
}

template <std::size_t OldPadding>
void emplace_from_inside_case()
{
  arc::cancellation_signal sig;
  reentry_counts c;
  probe_counts next;
  sig.slot().emplace<reentrant_handler<OldPadding>>(c, sig.slot(), &next);
  sig.emit(arc::reason::user("replace yourself"), asio::cancellation_type::terminal);
  EXPECT_EQ(c.calls, 1);
  EXPECT_FALSE(c.destroyed_mid_call) << "emplace() destroyed the handler while it ran";
  EXPECT_EQ(c.destroyed, 1);
  EXPECT_EQ(next.calls, 0);
  EXPECT_TRUE(sig.slot().has_handler());
  const auto why = arc::reason::user("to the new one");
  sig.emit(why, asio::cancellation_type::partial);
  EXPECT_EQ(c.calls, 1);
  EXPECT_EQ(next.calls, 1);
  EXPECT_EQ(next.last, asio::cancellation_type::partial);
  EXPECT_EQ(sig.reason(), why);
  sig.slot().clear();
  EXPECT_EQ(next.destroyed, 1);
}

} // namespace

// Defect 1d, layer 2: a handler may clear() or emplace() its own slot from
// inside its call; it is destroyed only once the call has returned.
TEST(cancellation_slot, a_handler_may_clear_its_own_slot_from_inside_its_call)
{
  clear_from_inside_case<0>();
}

TEST(cancellation_slot, a_heap_allocated_handler_may_clear_its_own_slot_from_inside_its_call)
{
  clear_from_inside_case<200>();
}

TEST(cancellation_slot, a_handler_may_emplace_its_successor_from_inside_its_call)
{
  emplace_from_inside_case<0>();
}

TEST(cancellation_slot, a_heap_allocated_handler_may_emplace_its_successor_from_inside_its_call)
{
  emplace_from_inside_case<200>();
}

// The same with an operation pending: the slot's handler clears the slot, then
// cancels the timer, whose wait completes through Asio as usual.
TEST(cancellation_signal, an_operation_whose_cancellation_handler_clears_the_slot_completes_once)
{
  asio::io_context ctx;
  arc::cancellation_signal sig;
  asio::steady_timer timer(ctx, 1h);
  completion done;
  reentry_counts c;
  timer.async_wait(asio::bind_cancellation_slot(sig.slot(), record(done)));
  struct clear_then_cancel
  {
    reentry_counts* counts;
    arc::cancellation_slot slot;
    asio::steady_timer* timer;
    clear_then_cancel(reentry_counts& c, arc::cancellation_slot s, asio::steady_timer& t)
      : counts(&c), slot(s), timer(&t)
    {
    }
    clear_then_cancel(clear_then_cancel&& o) noexcept
      : counts(std::exchange(o.counts, nullptr)), slot(o.slot), timer(o.timer)
    {
    }
    ~clear_then_cancel()
    {
      if (counts)
      {
        ++counts->destroyed;
        if (counts->depth > 0)
          counts->destroyed_mid_call = true;
      }
    }
    void operator()(asio::cancellation_type_t)
    {
      reentry_counts* c = counts;
      asio::steady_timer* t = timer;
      ++c->depth;
      ++c->calls;
      slot.clear();
      t->cancel();
      --c->depth;
    }
  };
  sig.slot().emplace<clear_then_cancel>(c, sig.slot(), timer);
  sig.emit(arc::reason::user("stop"), asio::cancellation_type::terminal);
  arc_test::run_until(ctx, [&] { return done.calls > 0; });
  drain(ctx);
  EXPECT_EQ(done.calls, 1);
  EXPECT_EQ(done.ec, asio::error::operation_aborted);
  EXPECT_EQ(c.calls, 1);
  EXPECT_FALSE(c.destroyed_mid_call);
  EXPECT_EQ(c.destroyed, 1);
}
