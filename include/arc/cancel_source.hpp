// arc: Asio Reasoned Cancellation
#ifndef ARC_CANCEL_SOURCE_HPP
#define ARC_CANCEL_SOURCE_HPP

#include <arc/cancel_reason.hpp>
#include <arc/detail/op_node.hpp>
#include <arc/detail/source_state.hpp>
#include <arc/detail/source_wait.hpp>

#include <boost/asio/async_result.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/execution/executor.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/is_executor.hpp>

#include <chrono>
#include <cstddef>
#include <source_location>
#include <type_traits>
#include <vector>

namespace arc {

/// Options for a cancel_source.
struct cancel_source_options
{
  /// How many requests history() keeps (the most recent ones). At least 1.
  std::size_t history_limit = 8;
};

/// A shared, thread-safe, level-triggered source of reasoned cancellation.
/**
 * A cancel_source is a handle; copies share one state. Operations are bound
 * to it with arc::bind_cancel(src, token) (or with make_slot()), coroutines with
 * arc::co_spawn, and child sources with make_child().
 *
 * - The first reason sticks: reason() never changes once set. Every request
 *   is counted by requests() and kept, up to a bound, in history().
 * - Level-triggered: once cancelled, it stays cancelled. An operation bound
 *   afterwards is cancelled as soon as its initiating function has returned:
 *   the emit is posted to the operation's executor, never delivered inside
 *   the initiation, whichever thread initiates. (If no executor is known at
 *   all, arc's initiating function delivers it itself once the operation's
 *   initiation has returned.)
 * - A request made from any thread is recorded at once. The emit to each bound
 *   operation runs on that operation's executor: the handler's associated
 *   executor, with the initiation's get_executor() (the I/O executor) as its
 *   fallback; with neither, the source's executor. Only when none exists does
 *   it run on the delivering thread, as a plain Asio signal's emit would.
 *   Inside an arc::co_spawn task, emits are delivered only while the
 *   coroutine is suspended, on any executor.
 * - Every request is delivered, as itself, with the union of the types so
 *   far. No lock is held while cancellation handlers run.
 * - Destroying the last handle does not cancel anything: bound operations
 *   keep the state alive and complete normally.
 *
 * @par Thread Safety
 * Distinct objects: safe. Shared objects: safe; every member may be called
 * concurrently from any thread.
 */
class cancel_source
{
public:
  class slot_type;

  /// A source without an executor.
  /**
   * Operations bound with bind_cancel still get their emits on their own
   * executor; only make_slot() needs the source's executor.
   */
  cancel_source();

  /// A source without an executor, with @p opts.
  explicit cancel_source(cancel_source_options opts);

  /// A source whose emits go to @p ex when a bound operation exposes no executor.
  template <typename Executor>
    requires(boost::asio::execution::is_executor<Executor>::value
        || boost::asio::is_executor<Executor>::value)
  explicit cancel_source(const Executor& ex, cancel_source_options opts = {});

  /// A source that uses @p ctx's executor.
  template <typename ExecutionContext>
    requires std::is_convertible_v<ExecutionContext&, boost::asio::execution_context&>
  explicit cancel_source(ExecutionContext& ctx, cancel_source_options opts = {})
    : cancel_source(ctx.get_executor(), opts)
  {
  }

  cancel_source(const cancel_source& other) noexcept;
  cancel_source(cancel_source&& other) noexcept;
  cancel_source& operator=(const cancel_source& other) noexcept;
  cancel_source& operator=(cancel_source&& other) noexcept;

  /// Drops this handle. Never cancels.
  ~cancel_source();

  // A moved-from source is empty: not cancelled, no requests, cancel() does
  // nothing and returns false, make_slot() throws no_executor, make_child()
  // returns a new independent source, bind_cancel() on it binds nothing.

  /// Request cancellation with reason::user() made at the caller's location.
  /**
   * @return true if this was the first request.
   *
   * @par Thread Safety
   * May be called from any thread.
   */
  bool cancel(std::source_location where = std::source_location::current());

  /// Request cancellation with @p reason, emitting @p type to bound operations.
  /**
   * The first reason is kept as reason(); later ones are counted and kept in
   * history(). Every request is delivered, as itself, to every bound
   * operation and child, with the union of the types requested so far: a
   * partial request after a terminal one never weakens it. An empty @p reason
   * is recorded as reason::unspecified().
   *
   * No lock is held while cancellation handlers run: a handler may complete
   * its operation inline, cancel this source or any other, or clear its
   * slot. A request made from inside a delivery on the same thread is
   * recorded at once and delivered before the outermost cancel() returns.
   *
   * @return true if this was the first request; false on a moved-from source.
   *
   * @throws whatever a cancellation handler run on this thread threw: every
   * other operation is notified first, then the first exception is rethrown.
   *
   * @par Thread Safety
   * May be called from any thread.
   *
   * @par Example
   * From test/cancel_source.cpp, `first_reason_sticks_and_later_requests_are_counted`:
   * @code
   * arc::cancel_source src;
   * const auto r1 = arc::reason::user("first");
   * const auto r2 = arc::reason::shutdown("second");
   * src.cancel(r1);   // true
   * src.cancel(r2);   // false
   * // src.reason() == r1, src.requests() == 2, src.history() == {r1, r2}
   * @endcode
   */
  bool cancel(cancel_reason reason,
      boost::asio::cancellation_type_t type = boost::asio::cancellation_type::terminal);

  /// Give this source a deadline: cancel it with a timeout reason after @p after.
  /**
   * Go's `context.WithTimeout`, on this source (use make_child() first to
   * leave the parent alone). When due, the source is cancelled, terminal,
   * with a timeout reason: its deadline() is the expiry, its where() the
   * caller. Unless that is the first request, it
   * is only counted, as any later request.
   *
   * Costs nothing once moot: when the source is cancelled (for any reason)
   * or its state is destroyed, the timer is cancelled at once and its memory
   * given back; the deadline never keeps the source alive. Destroying the
   * execution context destroys the timer. Every call adds a deadline; the
   * earliest wins.
   *
   * @return false if the source is already cancelled (nothing is armed), or
   * is moved-from.
   *
   * @throws boost::system::system_error(arc::error::no_executor) if the
   * source was made without an executor: the timer runs on it.
   *
   * @par Thread Safety
   * May be called from any thread.
   *
   * @par Example
   * From test/source_deadline.cpp, `a_deadline_cancels_the_source_with_a_timeout`:
   * @code
   * arc::cancel_source src(ctx);
   * src.cancel_after(10ms);
   * // once due: src.reason().kind() == reason_kind::timeout
   * @endcode
   */
  bool cancel_after(std::chrono::steady_clock::duration after,
      std::source_location where = std::source_location::current());

  /// Give this source a deadline that cancels it with @p reason. @see cancel_after
  bool cancel_after(std::chrono::steady_clock::duration after, cancel_reason reason);

  /// Give this source a deadline at @p deadline. @see cancel_after
  bool cancel_at(std::chrono::steady_clock::time_point deadline,
      std::source_location where = std::source_location::current());

  /// Give this source a deadline at @p deadline that cancels it with @p reason. @see cancel_after
  bool cancel_at(std::chrono::steady_clock::time_point deadline, cancel_reason reason);

  /// True once any request was made.
  bool cancelled() const noexcept;

  /// The first reason; empty while not cancelled.
  cancel_reason reason() const noexcept;

  /// How many requests were made.
  std::size_t requests() const noexcept;

  /// The most recent requests, oldest first, at most the history_limit.
  std::vector<cancel_reason> history() const;

  /// A new source that is cancelled, as reason_kind::parent, when this one is.
  /**
   * If this source is already cancelled, the child is cancelled at once.
   * Every later request reaches the child as itself (its history() holds
   * parent(R1), parent(R2), …). Cancelling the child does not affect this
   * source. The child shares this source's executor. Chains of any depth are
   * cancelled and destroyed without recursion. On a moved-from source,
   * returns a new, independent source.
   *
   * @par Example
   * From test/cancel_source.cpp, `a_child_is_cancelled_as_parent_of_the_parents_reason`:
   * @code
   * arc::cancel_source parent;
   * arc::cancel_source child = parent.make_child();
   * parent.cancel(why);
   * // child.reason().kind() == reason_kind::parent, child.reason().cause() == why
   * @endcode
   */
  cancel_source make_child() const;

  /// A slot for one operation, for use with boost::asio::bind_cancellation_slot.
  /**
   * Each call makes a new node, so each operation gets its own handler. The
   * node is released when the last copy of the slot is gone, which normally
   * is when the operation's handler is destroyed; do not keep copies beyond
   * the operation. Emits go to the source's executor.
   *
   * @throws boost::system::system_error(arc::error::no_executor) if the
   * source was made without an executor.
   */
  slot_type make_slot() const;

  /// Wait until this source is cancelled, without binding an operation to it.
  /**
   * Go's `<-ctx.Done()`: completes with the source's first reason once it is
   * cancelled, or at once (posted, never inside this call) if it already is.
   * Registering the wait runs no user code under a lock, and a cancel from
   * any thread completes it on the handler's executor.
   *
   * The wait is itself cancellable through the handler's associated slot
   * (terminal, partial or total): it then completes with an empty reason,
   * which is how a waiter tells "the source was cancelled" from "I stopped
   * waiting". On a moved-from source it completes at once with an empty
   * reason. Destroying the execution context destroys a pending handler
   * without calling it.
   *
   * @param token completion token.
   *
   * @par Completion Signature
   * @code void(arc::cancel_reason) @endcode
   *
   * @throws boost::system::system_error(arc::error::no_executor) if neither
   * the handler nor the source has an executor.
   *
   * @par Per-Operation Cancellation
   * terminal, partial and total; the source is not affected.
   *
   * @par Thread Safety
   * May be called from any thread; the source may be cancelled from any
   * thread meanwhile.
   *
   * @par Example
   * From test/source_wait.cpp, `a_wait_completes_with_the_first_reason`:
   * @code
   * src.async_wait([&](arc::cancel_reason r) { seen = r; });
   * src.cancel(why); // seen == why, once the handler has run
   * @endcode
   */
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void(cancel_reason)) WaitToken>
  auto async_wait(WaitToken&& token) const;

  /// True if the source was given an executor.
  bool has_executor() const noexcept;

  friend bool operator==(const cancel_source& a, const cancel_source& b) noexcept
  {
    return a.state_ == b.state_;
  }

  /// @cond INTERNAL
  explicit cancel_source(detail::source_state* adopted) noexcept : state_(adopted) {}
  detail::source_state* state() const noexcept { return state_; }
  /// @endcond

private:
  detail::source_state* state_;
};

/// The slot returned by cancel_source::make_slot(); satisfies Asio's CancellationSlot requirements.
/**
 * Copies share one node. Besides Asio's members it offers reason(): the
 * reason of the last emit that reached the installed handler.
 *
 * Binding two operations through one make_slot() object is a misuse (the second
 * replaces the first's handler, so only the second is cancelled), but it is
 * safe: each copy taken from the make_slot() object is a binding, and the handler
 * an operation installed through its binding is removed when that binding's
 * last copy (held by the operation's handler) is gone. A cancel never
 * reaches a completed operation's handler.
 */
class cancel_source::slot_type
{
public:
  /// A slot that is not connected.
  slot_type() noexcept = default;
  /// A copy of the slot returned by make_slot() starts a new binding (see below).
  slot_type(const slot_type& other);
  slot_type(slot_type&& other);
  slot_type& operator=(slot_type other) noexcept;
  ~slot_type();

  template <typename CancellationHandler, typename... Args>
  CancellationHandler& emplace(Args&&... args)
  {
    return slot_.node()->template emplace_owned<CancellationHandler>(
        binding_, std::forward<Args>(args)...);
  }

  template <typename CancellationHandler>
  std::decay_t<CancellationHandler>& assign(CancellationHandler&& h)
  {
    return slot_.assign(std::forward<CancellationHandler>(h));
  }

  void clear() noexcept { slot_.clear(); }
  bool is_connected() const noexcept { return slot_.is_connected(); }
  bool has_handler() const noexcept { return slot_.has_handler(); }
  const cancel_reason& reason() const noexcept { return slot_.reason(); }

  friend bool operator==(const slot_type& a, const slot_type& b) noexcept
  {
    return a.slot_ == b.slot_;
  }

  /// @cond INTERNAL
  explicit slot_type(detail::op_node* adopted) noexcept : slot_(adopted) {}
  void explain_completion(const cancel_reason& r) noexcept { slot_.explain_completion(r); }
  detail::node_view view() const noexcept { return detail::node_view(slot_.node()); }
  /// @endcond

private:
  void drop() noexcept;

  detail::node_slot slot_;
  // Copies made from the make_slot() object itself are bindings (one per bound
  // operation, as asio::bind_cancellation_slot copies it); copies of a
  // binding share it. A handler installed through a binding is removed when
  // the binding's last copy is gone, so two operations bound through one
  // make_slot() object never leave a completed operation's handler reachable.
  struct binding
  {
    detail::ref_count refs;
  };
  binding* binding_ = nullptr;
};

} // namespace arc

#include <arc/impl/cancel_source.hpp>

#endif
