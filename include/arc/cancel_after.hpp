// arc: Asio Reasoned Cancellation
#ifndef ARC_CANCEL_AFTER_HPP
#define ARC_CANCEL_AFTER_HPP

#include <arc/cancel_reason.hpp>
#include <arc/co_spawn.hpp>
#include <arc/error.hpp>

#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/basic_waitable_timer.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/wait_traits.hpp>

#include <chrono>
#include <source_location>
#include <type_traits>

namespace arc {

/// A completion token adapter that cancels the operation after a duration.
/** @see cancel_after */
template <typename CompletionToken, typename Clock = std::chrono::steady_clock,
    typename WaitTraits = boost::asio::wait_traits<Clock>>
class cancel_after_t
{
public:
  /// @cond INTERNAL
  typename Clock::duration expiry_;
  cancel_reason reason_;
  std::source_location where_;
  CompletionToken token_;
  boost::asio::cancellation_type_t cancel_type_ = boost::asio::cancellation_type::terminal;
  /// @endcond
};

/// A completion token adapter that cancels the operation at a time point.
/** @see cancel_at */
template <typename CompletionToken, typename Clock = std::chrono::steady_clock,
    typename WaitTraits = boost::asio::wait_traits<Clock>>
class cancel_at_t
{
public:
  /// @cond INTERNAL
  typename Clock::time_point expiry_;
  cancel_reason reason_;
  std::source_location where_;
  CompletionToken token_;
  boost::asio::cancellation_type_t cancel_type_ = boost::asio::cancellation_type::terminal;
  /// @endcond
};

/// A completion token adapter that cancels the operation after a duration, using the caller's timer.
/** @see cancel_after(timer, timeout, token) */
template <typename CompletionToken, typename Clock, typename WaitTraits, typename Executor>
class cancel_after_timer_t
{
public:
  /// @cond INTERNAL
  boost::asio::basic_waitable_timer<Clock, WaitTraits, Executor>* timer_;
  typename Clock::duration expiry_;
  cancel_reason reason_;
  std::source_location where_;
  CompletionToken token_;
  boost::asio::cancellation_type_t cancel_type_ = boost::asio::cancellation_type::terminal;
  /// @endcond
};

/// cancel_after without its token: apply it to one, or use it as the token.
/**
 * `arc::cancel_after(5s)(token)` is `arc::cancel_after(5s, token)`. Used as a
 * completion token itself, it adapts the default completion token of the
 * operation's executor (Asio 1.86's partial form), so it composes with
 * `as_default_on`: `co_await timer.async_wait(arc::cancel_after(5s))` where
 * the timer's executor defaults to use_awaitable.
 */
class partial_cancel_after
{
public:
  /// @cond INTERNAL
  std::chrono::steady_clock::duration expiry_;
  std::source_location where_;
  boost::asio::cancellation_type_t cancel_type_ = boost::asio::cancellation_type::terminal;
  /// @endcond

  /// Adapt @p token.
  template <typename CompletionToken>
  cancel_after_t<std::decay_t<CompletionToken>> operator()(CompletionToken&& token) const
  {
    return {expiry_, {}, where_, std::forward<CompletionToken>(token), cancel_type_};
  }
};

/// Cancel the operation if it has not completed within @p timeout.
/**
 * Asio 1.86's cancel_after, available on Boost 1.81, with a reason. Always
 * call it qualified, as arc::cancel_after: Boost ≥ 1.86 has its own.
 *
 * @param timeout  how long the operation may run.
 * @param token    completion token.
 * @param where    the location the timeout reason names; defaults to the caller.
 *
 * @par Completion Signature
 * That of the operation. If the deadline fired first and the operation
 * completed with a cancellation, the completion says timed_out instead, read
 * by the signature's first argument type:
 * - an error code (anything convertible to boost::system::error_code,
 *   whatever the operation passed: an error_code or Asio's bare error enum)
 *   becomes arc::error::timed_out (still equal to errc::operation_canceled);
 * - a std::exception_ptr holding a system_error with a cancellation code (a
 *   coroutine's, from asio::co_spawn or arc::co_spawn) becomes one holding
 *   arc::cancelled_error with code arc::error::timed_out and the reason.
 *
 * The reason is reason::timeout(deadline); it reaches arc::with_reason's
 * appended reason, through any number of nested cancel_after adapters.
 *
 * @par Per-Operation Cancellation
 * The operation sees a slot owned by arc. On expiry it is emitted with
 * terminal and the timeout reason (posted, if the operation has not installed
 * its handler yet). A request through the token's own slot (say, from an
 * enclosing coroutine) passes through unchanged: the operation completes with
 * operation_aborted and that request's reason.
 *
 * @par Executors and Allocation
 * As Asio's cancel_after: the timer is an I/O object on the operation's I/O
 * executor (the initiation's get_executor()), and its expiry, like the
 * operation's own steps, runs on the handler's associated executor. An
 * initiation without an executor (Beast 1.81's) leaves the handler's
 * associated executor; a handler without one does not compile (bind one with
 * asio::bind_executor). The state is one allocation from the handler's
 * associated allocator, returned before the handler runs; the handler runs
 * once both the operation and the timer's wait have completed.
 *
 * @par Thread Safety
 * arc's own state is guarded, so an associated executor that does not
 * serialise (use_future's, a thread pool) is safe; the operation itself
 * follows Asio's rules.
 *
 * @par Example
 * From test/cancel_after.cpp:
 * @code
 * asio::async_read(p.a, asio::buffer(p.buf),
 *     arc::cancel_after(50ms, arc::with_reason(src,
 *         [&](error_code ec, std::size_t, arc::cancel_reason r) {
 *           // ec == arc::error::timed_out; r.kind() == arc::reason_kind::timeout
 *         })));
 * @endcode
 */
template <typename Rep, typename Period, typename CompletionToken>
cancel_after_t<std::decay_t<CompletionToken>> cancel_after(
    const std::chrono::duration<Rep, Period>& timeout, CompletionToken&& token,
    std::source_location where = std::source_location::current());

/// Cancel the operation with @p reason if it has not completed within @p timeout.
/** As cancel_after(timeout, token); @p reason is used instead of reason::timeout. */
template <typename Rep, typename Period, typename CompletionToken>
cancel_after_t<std::decay_t<CompletionToken>> cancel_after(
    const std::chrono::duration<Rep, Period>& timeout, cancel_reason reason,
    CompletionToken&& token);

/// Cancel the operation with @p type if it has not completed within @p timeout.
/**
 * As cancel_after(timeout, token), emitting @p type (partial, total or
 * terminal) on expiry instead of terminal, as Asio 1.86's overload does. An
 * operation that does not support @p type ignores it and runs on.
 */
template <typename Rep, typename Period, typename CompletionToken>
  requires(!std::is_same_v<std::decay_t<CompletionToken>, boost::asio::cancellation_type_t>)
cancel_after_t<std::decay_t<CompletionToken>> cancel_after(
    const std::chrono::duration<Rep, Period>& timeout, boost::asio::cancellation_type_t type,
    CompletionToken&& token, std::source_location where = std::source_location::current());

/// Cancel the operation if it has not completed within @p timeout, using @p timer.
/**
 * As cancel_after(timeout, token), with the caller's timer instead of one
 * of the operation's own (Asio 1.86's overload): no timer is constructed, and
 * the timer's clock is used. The timer must outlive the operation and not be
 * used by anything else meanwhile; its expiry is set by this call.
 */
template <typename Clock, typename WaitTraits, typename Executor, typename Rep, typename Period,
    typename CompletionToken>
cancel_after_timer_t<std::decay_t<CompletionToken>, Clock, WaitTraits, Executor> cancel_after(
    boost::asio::basic_waitable_timer<Clock, WaitTraits, Executor>& timer,
    const std::chrono::duration<Rep, Period>& timeout, CompletionToken&& token,
    std::source_location where = std::source_location::current());

/// cancel_after without its token (Asio 1.86's partial form). @see partial_cancel_after
template <typename Rep, typename Period>
partial_cancel_after cancel_after(const std::chrono::duration<Rep, Period>& timeout,
    boost::asio::cancellation_type_t type = boost::asio::cancellation_type::terminal,
    std::source_location where = std::source_location::current());

/// Cancel the operation if it has not completed by @p expiry.
/**
 * As cancel_after, with an absolute time on any clock Asio's timers accept.
 *
 * @par Example
 * From test/cancel_after.cpp:
 * @code
 * t.async_wait(arc::cancel_at(std::chrono::system_clock::now() + 10ms,
 *     arc::with_reason(src, [&](error_code ec, arc::cancel_reason r) {
 *       // ec == arc::error::timed_out; r.kind() == arc::reason_kind::timeout
 *     })));
 * @endcode
 */
template <typename Clock, typename Duration, typename CompletionToken>
cancel_at_t<std::decay_t<CompletionToken>, Clock> cancel_at(
    const std::chrono::time_point<Clock, Duration>& expiry, CompletionToken&& token,
    std::source_location where = std::source_location::current());

/// Cancel the operation with @p reason if it has not completed by @p expiry.
template <typename Clock, typename Duration, typename CompletionToken>
cancel_at_t<std::decay_t<CompletionToken>, Clock> cancel_at(
    const std::chrono::time_point<Clock, Duration>& expiry, cancel_reason reason,
    CompletionToken&& token);

/// Run @p body; if it is still running after @p timeout, cancel it with a timeout reason.
/**
 * The body runs in a scope of the calling task (or, outside a task, a scope
 * of its own): inside it, this_task::reason() says why it was cancelled, and
 * this_task::source() is still the task's own source.
 *
 * - If this timeout cancels the body (its reason is the one recorded) and the
 *   body ends with a cancellation, with_timeout throws arc::cancelled_error
 *   with code arc::error::timed_out and the timeout reason.
 * - If an outer cancellation (reason R) arrives first, the body sees R, not a
 *   timeout; the body (a cancelled scope) ends with arc::cancelled_error
 *   carrying R, which is rethrown unconverted.
 * - If the body completes, its result is returned, even if the deadline
 *   passed while it was finishing.
 *
 * @par Per-Operation Cancellation
 * The calling coroutine's cancellation (terminal) reaches the body.
 *
 * @par Example
 * From test/cancel_after.cpp,
 * `with_timeout.a_body_past_its_deadline_is_cancelled_and_reported_as_timed_out`:
 * @code
 * try
 * {
 *   co_await arc::with_timeout(20ms, wait_an_hour());
 * }
 * catch (const arc::cancelled_error& e)
 * {
 *   // e.code() == arc::error::timed_out; e.reason() prints "timeout (deadline 20ms) at …"
 * }
 * @endcode
 */
template <typename T, typename Executor>
boost::asio::awaitable<T, Executor> with_timeout(std::chrono::steady_clock::duration timeout,
    boost::asio::awaitable<T, Executor> body,
    std::source_location where = std::source_location::current());

/// Run @p body; if it is still running at @p deadline, cancel it with a timeout reason.
/**
 * As with_timeout, with an absolute deadline; the timeout reason's
 * deadline() is @p deadline.
 *
 * @par Example
 * From test/cancel_after.cpp, `with_timeout_at.a_body_past_its_deadline_is_reported_as_timed_out`:
 * @code
 * co_await arc::with_timeout_at(std::chrono::steady_clock::now() + 20ms, wait_an_hour());
 * // throws arc::cancelled_error: code() == timed_out, reason().deadline() is that time point
 * @endcode
 */
template <typename T, typename Executor>
boost::asio::awaitable<T, Executor> with_timeout_at(std::chrono::steady_clock::time_point deadline,
    boost::asio::awaitable<T, Executor> body,
    std::source_location where = std::source_location::current());

} // namespace arc

#include <arc/impl/cancel_after.hpp>

#endif
