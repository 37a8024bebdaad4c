// arc: Asio Reasoned Cancellation
#ifndef ARC_CANCEL_GUARD_HPP
#define ARC_CANCEL_GUARD_HPP

#include <arc/cancel_reason.hpp>
#include <arc/cancellation_signal.hpp>
#include <arc/co_spawn.hpp>
#include <arc/error.hpp>
#include <arc/persistent_task_group.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_type.hpp>

#include <chrono>
#include <cstddef>
#include <exception>
#include <source_location>
#include <vector>

namespace arc {

/// When a guard lets an absorbed request through. Trivially copyable.
/**
 * Both limits may be set; whichever is reached first escalates. Made by
 * escalate::never, escalate::after(n) and escalate::after(duration).
 */
struct escalation_policy
{
  /// The n-th request that arrives while guarded is delivered (terminal,
  /// reason::escalated(that request)); 0: never by count.
  std::size_t after_requests = 0;

  /// A guarded region that runs this long is cancelled (terminal,
  /// reason::escalated(the task's first reason)); max(): never by time.
  std::chrono::steady_clock::duration after_time = std::chrono::steady_clock::duration::max();
};

/// The escalation policies.
namespace escalate {

/// Absorb every request; only one made with arc::force gets through.
inline constexpr escalation_policy never{};

/// The @p n-th request that arrives while guarded gets through, as escalated.
constexpr escalation_policy after(std::size_t n) noexcept
{
  return {n, std::chrono::steady_clock::duration::max()};
}

/// A guarded region still running after @p d is cancelled, as escalated.
constexpr escalation_policy after(std::chrono::steady_clock::duration d) noexcept
{
  return {0, d};
}

} // namespace escalate

/// A cancellation type bit: a request made with it always gets through a guard.
/**
 * Combine it with a type: `src.cancel(r, asio::cancellation_type::terminal |
 * arc::force)`. A guard delivers the request as itself, without the bit;
 * Asio's operations ignore bits they do not know, so the bit is harmless
 * elsewhere.
 */
inline constexpr boost::asio::cancellation_type_t force =
    static_cast<boost::asio::cancellation_type_t>(0x10000u);

/// The slot-level double-cancel guard: between an upstream slot and one operation.
/**
 * Each request from upstream (request(), or an emit into a slot it is
 * attached to) is absorbed, that is counted and not delivered, unless the
 * policy escalates it or it carries arc::force. A request that gets through
 * is emitted, terminal, into slot(), to which the guarded operation is bound.
 * arc::cleanup and arc::guarded are built on it.
 *
 * The same rules as arc::cancellation_signal: request(), escalate(), and the
 * upstream's emits run on the operation's thread or strand.
 *
 * @par Example
 * @code
 * arc::cancel_guard guard(arc::escalate::after(2));
 * guard.attach(upstream_slot);
 * flush.async_write(buf, asio::bind_cancellation_slot(guard.slot(), handler));
 * @endcode
 */
class cancel_guard
{
public:
  /// A guard with @p policy's count limit (its time limit is the caller's to
  /// keep: call escalate() when it passes).
  explicit cancel_guard(escalation_policy policy = escalate::never) noexcept : policy_(policy) {}

  cancel_guard(const cancel_guard&) = delete;
  cancel_guard& operator=(const cancel_guard&) = delete;

  /// The slot to bind the guarded operation to.
  cancellation_slot slot() noexcept { return out_.slot(); }

  /// One request: absorbed, or passed on. Returns true if it was passed on.
  /**
   * Passed on: a request with arc::force (as itself, without the bit; terminal
   * if no other type is left), and the policy's n-th request (terminal,
   * reason::escalated(@p r), recorded at @p where).
   */
  bool request(boost::asio::cancellation_type_t type, const cancel_reason& r = {},
      std::source_location where = std::source_location::current());

  /// Pass on a request now: terminal, reason::escalated(@p cause).
  void escalate(const cancel_reason& cause,
      std::source_location where = std::source_location::current());

  /// Requests absorbed so far.
  std::size_t absorbed() const noexcept { return absorbed_; }

  /// True once a request was passed on.
  bool passed() const noexcept { return passed_; }

  /// The policy.
  const escalation_policy& policy() const noexcept { return policy_; }

  /// Take requests from @p upstream: installs a handler there that calls
  /// request() with each emit's type (and its reason, for an arc slot).
  template <typename CancellationSlot>
  void attach(CancellationSlot upstream);

private:
  escalation_policy policy_;
  std::size_t absorbed_ = 0;
  bool passed_ = false;
  cancellation_signal out_;
};

/// A completion token adapter: the operation is guarded by an arc::cancel_guard.
/**
 * Requests through the token's own slot are absorbed by the guard, which
 * passes on the policy's escalation (the n-th request, or the time limit,
 * counted from the initiation, on the handler's executor) and requests made
 * with arc::force. The completion signature is the wrapped token's.
 */
template <typename CompletionToken>
class guarded_t
{
public:
  template <typename T>
  guarded_t(escalation_policy policy, T&& token)
    : policy_(policy), token_(std::forward<T>(token))
  {
  }

  /// The policy.
  const escalation_policy& policy() const noexcept { return policy_; }

  /// @cond INTERNAL
  escalation_policy policy_;
  CompletionToken token_;
  /// @endcond
};

/// Guard the operation started with @p token: its cancellation requests are absorbed per @p policy.
/**
 * @par Example
 * @code
 * // A second Ctrl-C does not cut the final write; a third does.
 * co_await asio::async_write(sock, buf, arc::guarded(arc::escalate::after(2), asio::use_awaitable));
 * @endcode
 *
 * @par Per-Operation Cancellation
 * What the guard passes on, terminal (or as itself with arc::force).
 *
 * Inside an Asio coroutine the requests reach the guard through the
 * coroutine's cancellation state, whose filters keep only Asio's own type
 * bits: there a request made with arc::force is absorbed like any other. Use
 * arc::cleanup, which takes requests from the task's source itself, when
 * force must get through from inside a coroutine.
 */
template <typename CompletionToken>
guarded_t<std::decay_t<CompletionToken>> guarded(escalation_policy policy, CompletionToken&& token)
{
  return {policy, std::forward<CompletionToken>(token)};
}

/// Run cleanup @p work after a cancellation, so that further requests do not abort it.
/**
 * The work runs as a task of its own on the caller's executor. While it
 * runs, a request that reaches the calling task is recorded and counted
 * there (this_task::requests()), and absorbed: neither the calling task nor
 * the work sees it. It is delivered to the calling task once the cleanup has
 * returned, at its next cancellation point, as a defer-shield does. The
 * exceptions, delivered to the work at once, terminal:
 * - a request made with arc::force, as itself;
 * - the policy's n-th request, as reason::escalated(that request);
 * - with escalate::after(d), after d, as reason::escalated(the task's first
 *   reason).
 *
 * Asio's coroutines throw at every `co_await` once their cancellation state
 * is set: a task whose cancellation has been delivered resets it first,
 * `co_await boost::asio::this_coro::reset_cancellation_state();`, as Asio
 * requires before awaiting anything after a cancellation.
 *
 * @param work    the cleanup.
 * @param policy  when a request gets through.
 * @param where   where the cleanup runs, for escalated reasons.
 * @return        the work's result; rethrows what it threw (an escalation as
 *                arc::cancelled_error with code arc::error::escalated).
 * @throws boost::system::system_error(arc::error::not_in_task) if not called
 *         from inside an arc task.
 *
 * @par Thread Safety
 * Call from inside an arc task. Requests may come from any thread.
 */
template <typename T, typename Executor>
boost::asio::awaitable<T, Executor> cleanup(boost::asio::awaitable<T, Executor> work,
    escalation_policy policy = escalate::never,
    std::source_location where = std::source_location::current());

/// The completion signature of cancel_and_wait.
using cancel_and_wait_signature = void(std::exception_ptr);

/// Cancel a group's child with @p reason and wait until it has ended (aiotools' cancel_and_wait).
/**
 * @param target  the child.
 * @param reason  why; the child records it as itself.
 * @param token   completion token.
 *
 * @par Completion Signature
 * @code void(std::exception_ptr) @endcode
 * - null: the child ended by its cancellation, or completed while a shield
 *   or cleanup still held it back (it did what it promised);
 * - system_error(arc::error::cancel_ignored): it swallowed the cancellation
 *   and completed normally;
 * - the child's own exception: it failed;
 * - system_error(arc::error::already_finished): it had completed before the
 *   call (nothing was cancelled); posted, never inline;
 * - cancelled_error(boost::asio::error::operation_aborted, the caller's
 *   reason): the caller was cancelled meanwhile.
 *
 * @par Per-Operation Cancellation
 * Terminal, partial and total: stops the waiting only; the child stays
 * cancelled.
 *
 * @throws boost::system::system_error(invalid_argument) for an empty handle.
 */
template <typename T,
    BOOST_ASIO_COMPLETION_TOKEN_FOR(void(std::exception_ptr)) CompletionToken =
        boost::asio::default_completion_token_t<boost::asio::any_io_executor>>
auto cancel_and_wait(const task_handle<T>& target, cancel_reason reason,
    CompletionToken&& token = boost::asio::default_completion_token_t<boost::asio::any_io_executor>());

/// Cancel several children with @p reason and wait until every one has ended.
/**
 * Each target is cancelled at once, then waited for, as the single-target
 * form does.
 *
 * @param targets  the children; not empty, no empty handle.
 * @param reason   why; each child records it as itself.
 * @param token    completion token.
 *
 * @par Completion Signature
 * @code void(std::exception_ptr) @endcode
 * Once every target has ended:
 * - null: every target ended by its cancellation (or in a shield that held
 *   it back);
 * - otherwise the first target's outcome, in the order given, that is not
 *   null, as the single-target form reports it: its own exception,
 *   arc::error::cancel_ignored, or arc::error::already_finished;
 * - cancelled_error(boost::asio::error::operation_aborted, the caller's
 *   reason): the caller was cancelled meanwhile; it completes once each wait
 *   has stopped, and the targets stay cancelled.
 *
 * @par Per-Operation Cancellation
 * Terminal, partial and total: stops the waiting only.
 *
 * @throws boost::system::system_error(invalid_argument) for an empty list or
 *         an empty handle in it; nothing is cancelled then.
 */
template <typename T,
    BOOST_ASIO_COMPLETION_TOKEN_FOR(void(std::exception_ptr)) CompletionToken =
        boost::asio::default_completion_token_t<boost::asio::any_io_executor>>
auto cancel_and_wait(const std::vector<task_handle<T>>& targets, cancel_reason reason,
    CompletionToken&& token = boost::asio::default_completion_token_t<boost::asio::any_io_executor>());

namespace this_task {

/// Withdraw one cancellation request from the current task (asyncio's uncancel()).
/**
 * Returns the requests left. At zero the task no longer counts as cancelled:
 * cancelled() is false, reason() empty, an enclosing with_timeout and the
 * task's group treat it as never cancelled, and a later request cancels it
 * again. Its first reason and history are kept as they were. A request not
 * yet delivered to the task's coroutine is withdrawn with the last count.
 * One already delivered left Asio's cancellation state set: reset it before
 * the next co_await (`co_await boost::asio::this_coro::reset_cancellation_state();`).
 *
 * @throws boost::system::system_error(arc::error::not_in_task) outside a task,
 *         and (arc::error::not_cancelled) if no request is left to withdraw.
 */
std::size_t uncancel();

} // namespace this_task
} // namespace arc

#include <arc/impl/cancel_guard.hpp>

#endif
