// arc: Asio Reasoned Cancellation
#ifndef ARC_CANCELLATION_SIGNAL_HPP
#define ARC_CANCELLATION_SIGNAL_HPP

#include <arc/cancel_reason.hpp>
#include <arc/detail/handler_storage.hpp>

#include <boost/asio/cancellation_type.hpp>

#include <type_traits>

namespace arc {

class cancellation_slot;

/// Asio's cancellation_signal, plus a reason.
/**
 * The zero-cost layer. It keeps Asio's rules: one handler at a time, and
 * emit(), slot().emplace() and slot().clear() must happen on the same thread
 * or strand as the bound operation. It is edge-triggered: an emit while no
 * handler is installed does nothing, and records nothing.
 *
 * Bind an operation with
 * @code boost::asio::bind_cancellation_slot(sig.slot(), token) @endcode
 * Every Asio operation accepts the slot: timers, sockets, async_compose,
 * co_spawn and parallel_group.
 *
 * The handler lives in an inline buffer, so emplace does not allocate for
 * Asio's own cancellation handlers.
 *
 * @par Thread Safety
 * Distinct objects: safe. Shared objects: unsafe.
 */
class cancellation_signal
{
public:
  cancellation_signal() noexcept = default;
  cancellation_signal(const cancellation_signal&) = delete;
  cancellation_signal& operator=(const cancellation_signal&) = delete;

  /// Destroys the installed handler, if any, without calling it.
  ~cancellation_signal() = default;

  /// Emit @p type with reason::unspecified(), as Asio's signal would.
  void emit(boost::asio::cancellation_type_t type);

  /// Record @p reason, then emit @p type to the installed handler.
  /**
   * The arguments come in the order cancel_source::cancel() takes them.
   * If no handler is installed, nothing happens. Re-emitting the reason
   * already recorded costs no atomic operation. The handler may clear() or
   * emplace() the slot from inside its call: it is destroyed once the call
   * returns.
   *
   * @par Example
   * From test/cancellation_signal.cpp, `an_emit_with_a_reason_reaches_the_handler_and_is_recorded`:
   * @code
   * arc::cancellation_signal sig;
   * sig.slot().emplace<probe>(counts, &sig);
   * sig.emit(arc::reason::user("stop"), asio::cancellation_type::terminal);
   * // the handler ran once; sig.reason() is the reason
   * @endcode
   */
  void emit(const cancel_reason& reason,
      boost::asio::cancellation_type_t type = boost::asio::cancellation_type::terminal);

  /// The slot to bind an operation to.
  cancellation_slot slot() noexcept;

  /// The reason of the last emit that reached a handler; empty if none.
  const cancel_reason& reason() const noexcept { return reason_; }

private:
  friend class cancellation_slot;
  detail::handler_storage handler_;
  cancel_reason reason_;
};

/// The slot of an arc::cancellation_signal; satisfies Asio's CancellationSlot requirements.
/**
 * A cheap, copyable handle. It provides Asio's emplace, assign, clear,
 * is_connected, has_handler and equality, plus reason().
 */
class cancellation_slot
{
public:
  /// A slot that is not connected to any signal.
  constexpr cancellation_slot() noexcept = default;

  /// Install a handler constructed from @p args, destroying any previous one.
  template <typename CancellationHandler, typename... Args>
  CancellationHandler& emplace(Args&&... args);

  /// Install @p handler, destroying any previous one.
  template <typename CancellationHandler>
  std::decay_t<CancellationHandler>& assign(CancellationHandler&& handler);

  /// Destroy the installed handler, if any, without calling it.
  void clear() noexcept;

  /// True if the slot belongs to a signal.
  bool is_connected() const noexcept { return signal_ != nullptr; }

  /// True if a handler is installed.
  bool has_handler() const noexcept;

  /// The reason of the last emit that reached this slot's handler; empty if none.
  const cancel_reason& reason() const noexcept;

  friend bool operator==(const cancellation_slot& a, const cancellation_slot& b) noexcept
  {
    return a.signal_ == b.signal_;
  }

  /// @cond INTERNAL
  // Lets an adapter (arc::cancel_after) say why the operation behind this slot
  // ended, when the cancellation reached it through another slot.
  void explain_completion(const cancel_reason& r) noexcept
  {
    if (signal_)
      signal_->reason_ = r;
  }
  /// @endcond

private:
  friend class cancellation_signal;
  explicit cancellation_slot(cancellation_signal* s) noexcept : signal_(s) {}
  cancellation_signal* signal_ = nullptr;
};

} // namespace arc

#include <arc/impl/cancellation_signal.hpp>

#endif
