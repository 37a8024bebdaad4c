// arc: Asio Reasoned Cancellation
#ifndef ARC_SHIELD_HPP
#define ARC_SHIELD_HPP

#include <arc/cancel_reason.hpp>
#include <arc/co_spawn.hpp>
#include <arc/error.hpp>
#include <arc/shield_executor.hpp>
#include <arc/task_info.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/execution_context.hpp>

#include <chrono>
#include <exception>
#include <functional>
#include <optional>
#include <source_location>
#include <string_view>
#include <type_traits>
#include <vector>

namespace arc {

/// What a shield does with a cancellation of the code that awaits it.
enum class shield_policy
{
  /// The awaiter waits for the work and gets its result; the cancellation is
  /// delivered at its next cancellation point (Trio's shielded scope,
  /// aiotools' ShieldScope, Kotlin's NonCancellable).
  defer,
  /// The awaiter resumes at once, cancelled; the work runs on, owned by the
  /// registry (asyncio.shield).
  detach
};

/// Options of a shield. Every member has a default initialiser, so
/// designated initialisers may name only some.
/**
 * Trivially copyable on purpose: g++ 12 miscompiles a class prvalue that
 * owns memory (a std::string, a std::function) passed as an argument inside
 * a `co_await` expression, which is how a shield is called
 * (`co_await arc::shield(w, {.name = "x"})`). The name is copied when the
 * shield is entered.
 */
struct shield_options
{
  /// Force-cancel the work (terminal, reason kind `shield_deadline`) if it
  /// runs this long after the shield was entered. None: no deadline.
  std::optional<std::chrono::steady_clock::duration> deadline{};

  /// The same as a time point; the earlier of the two applies.
  std::optional<std::chrono::steady_clock::time_point> deadline_at{};

  /// defer (the default) or detach.
  shield_policy policy = shield_policy::defer;

  /// The shield's name, in shield_info and shutdown reports; copied.
  std::string_view name{};
};

/// Run @p work so that cancelling the code that awaits it cannot abort it.
/**
 * The work runs as a task of its own (this_task inside it is the work's,
 * and is not cancelled), on the awaiter's executor. It is registered in the
 * context's arc::registry, and it holds outstanding work on that executor,
 * so `run()` does not return while it is pending. A group's `cancel` and
 * `async_shutdown` never reach it; `arc::async_shutdown(ctx)` and
 * `shutdown_on_signals` wait for it, up to its deadline or their
 * `force_after`, and list it in their report.
 *
 * - **defer**: the awaiter gets the work's result or exception. A
 *   cancellation that reached the awaiting task meanwhile is recorded at once
 *   (`this_task::reason()`, `requests()`), and delivered once the shield has
 *   returned, at the task's next cancellation point: the operation it awaits
 *   next is cancelled (with arc::use_awaitable it throws arc::cancelled_error
 *   with the first reason).
 * - **detach**: if the awaiting task is cancelled, the awaiter resumes at
 *   once with arc::cancelled_error (code boost::asio::error::operation_aborted,
 *   the task's reason); the work runs on to completion.
 *
 * If the deadline passes, the work is cancelled, terminal, with
 * reason::shield_deadline; if it then ends with a cancellation, the shield
 * throws arc::cancelled_error with arc::error::shield_deadline_exceeded.
 *
 * Asio's coroutines throw at every `co_await` once their cancellation state
 * is set. A task whose cancellation has already been delivered (an
 * operation it awaited was cancelled) must reset it before it can await
 * anything, a shield included: `co_await
 * boost::asio::this_coro::reset_cancellation_state();`. A task cancelled
 * while it runs (not yet delivered) enters the shield as it is.
 *
 * @param work   the work to shield.
 * @param opts   deadline, policy, name.
 * @param where  where the shield is entered, for reports.
 * @return       the work's result; rethrows what it threw.
 *
 * @par Thread Safety
 * Call from inside a coroutine. The awaiting task may be cancelled from any
 * thread meanwhile.
 */
template <typename T, typename Executor>
boost::asio::awaitable<T, Executor> shield(boost::asio::awaitable<T, Executor> work,
    shield_options opts = {}, std::source_location where = std::source_location::current());

/// A shield whose work's completion is also reported to @p on_done.
/**
 * For shield_policy::detach, where the awaiter may be gone by the time the
 * work completes: @p on_done is called once with what the work threw (null on
 * success), on the work's executor, whether or not the awaiter is still
 * there. An exception it throws is dropped.
 *
 * Without it, a detached work's failure that its awaiter did not receive
 * (the awaiter had left) is reported through registry::on_shield_error
 * (default: one line on stderr), never silently dropped.
 *
 * @see shield
 */
template <typename T, typename Executor, typename DoneHandler>
  requires std::is_invocable_v<DoneHandler&, std::exception_ptr>
boost::asio::awaitable<T, Executor> shield(boost::asio::awaitable<T, Executor> work,
    shield_options opts, DoneHandler&& on_done,
    std::source_location where = std::source_location::current());

/// A completion token adapter: the operation started with it is shielded.
/**
 * @see shielded
 */
template <typename CompletionToken>
class shielded_t
{
public:
  template <typename T>
  shielded_t(std::chrono::steady_clock::time_point deadline, std::source_location where, T&& token)
    : deadline_(deadline), where_(where), token_(std::forward<T>(token))
  {
  }

  /// @cond INTERNAL
  std::chrono::steady_clock::time_point deadline_;
  std::source_location where_;
  CompletionToken token_;
  /// @endcond
};

/// Shield the operation started with @p token, for callback-style code.
/**
 * The operation is not connected to the token's cancellation slot (nor to a
 * coroutine's cancellation state, with use_awaitable): cancelling the caller
 * does not abort it. Until it completes it is a shield like
 * arc::shield's: listed in arc::shields(ctx), holding outstanding work on its
 * handler's executor, waited for by `arc::async_shutdown(ctx)` and
 * `shutdown_on_signals` and listed in their report.
 *
 * The completion signature is the wrapped token's.
 *
 * @param token  the completion token of the operation to shield.
 * @param where  where the operation was started, for reports.
 *
 * @par Example
 * @code
 * // A Ctrl-C during the write does not cut it; the shutdown waits for it.
 * co_await asio::async_write(sock, buf, arc::shielded(asio::use_awaitable));
 * @endcode
 *
 * @par Per-Operation Cancellation
 * None from outside. With a deadline (the other overload), the operation is
 * cancelled, terminal, with reason::shield_deadline when it passes, and an
 * error_code it then completes with that reads operation_aborted is replaced
 * by arc::error::shield_deadline_exceeded.
 *
 * @par Errors
 * Throws boost::system::system_error with arc::error::no_executor if
 * neither the handler nor the operation has an executor to hold work on.
 */
template <typename CompletionToken>
shielded_t<std::decay_t<CompletionToken>> shielded(CompletionToken&& token,
    std::source_location where = std::source_location::current());

/// Shield the operation started with @p token, up to @p deadline from now.
/**
 * @see shielded
 */
template <typename CompletionToken>
shielded_t<std::decay_t<CompletionToken>> shielded(std::chrono::steady_clock::duration deadline,
    CompletionToken&& token, std::source_location where = std::source_location::current());

/// Every shield on @p ctx whose work is running, in the order they were entered.
std::vector<shield_info> shields(boost::asio::execution_context& ctx);

} // namespace arc

#include <arc/impl/shield.hpp>

#endif
