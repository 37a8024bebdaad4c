// arc: Asio Reasoned Cancellation
#ifndef ARC_CO_SPAWN_HPP
#define ARC_CO_SPAWN_HPP

#include <arc/bind_cancel.hpp>
#include <arc/cancel_source.hpp>
#include <arc/detail/task_executor.hpp>

#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/execution_context.hpp>

#include <cstddef>
#include <exception>
#include <type_traits>

namespace arc {

// The spawn functions live in a namespace of their own, brought into arc by
// a using-directive: a qualified call (arc::co_spawn) finds them, and
// argument-dependent lookup does not. Asio's own code calls co_spawn
// unqualified (the awaitable operators || and &&) with awaitables whose value
// type may be arc's, such as src.async_wait(use_awaitable)'s cancel_reason;
// ADL would find arc::co_spawn there too, and the call would be ambiguous.
namespace spawn_functions {

/// Spawn a coroutine, as boost::asio::co_spawn does, and give it a task context.
/**
 * The task context is a cancel_source of the coroutine's own, read inside it
 * through arc::this_task. It is linked to the token's cancellation slot:
 * - if the slot came from arc::bind_cancel(src, …), a cancel on src reaches
 *   the task with src's reason, unchanged;
 * - if it is a plain Asio slot, the reason is `unspecified`, unless the
 *   coroutine was spawned from inside another arc task that is itself
 *   cancelled, in which case it is `parent` of that task's reason (so
 *   `co_await arc::co_spawn(ex, child(), use_awaitable)` links child to parent).
 *
 * this_task::source().cancel(reason) cancels the coroutine itself.
 *
 * @param ex     the executor the coroutine runs on. The awaitable's executor
 *               type must be constructible from an executor adapter (true of
 *               boost::asio::any_io_executor, the default).
 * @param a      the coroutine.
 * @param token  completion token; by default the executor's default completion
 *               token, as for boost::asio::co_spawn.
 *
 * @par Completion Signature
 * @code void(std::exception_ptr, T) @endcode for awaitable<T>,
 * @code void(std::exception_ptr) @endcode for awaitable<void>.
 *
 * @par Per-Operation Cancellation
 * As boost::asio::co_spawn: terminal, delivered to the coroutine's current
 * operation. The request is first recorded in the task's source, with a reason.
 *
 * @par Thread Safety
 * As boost::asio::co_spawn. The task's source may be cancelled from any
 * thread, on any executor (a thread_pool without a strand included): the
 * task's emits are delivered only while its coroutine is suspended.
 *
 * @par Example
 * From test/co_spawn.cpp, `a_cancelled_task_sees_the_reason_tag_and_cancel_site`:
 * @code
 * arc::cancel_source src;
 * arc::co_spawn(ctx, wait_forever(seen), arc::bind_cancel(src, [&](std::exception_ptr e) {
 *   failure = e;
 *   done = true;
 * }));
 * asio::post(ctx, [&] { src.cancel(arc::reason::user("stop", my_tag{7})); });
 * // inside wait_forever: arc::this_task::reason().tag<my_tag>()->v == 7
 * @endcode
 */
template <typename Executor, typename T, typename AwaitableExecutor,
    BOOST_ASIO_COMPLETION_TOKEN_FOR(void(std::exception_ptr, T))
        CompletionToken = boost::asio::default_completion_token_t<Executor>>
  requires(boost::asio::execution::is_executor<Executor>::value
      || boost::asio::is_executor<Executor>::value)
auto co_spawn(const Executor& ex, boost::asio::awaitable<T, AwaitableExecutor> a,
    CompletionToken&& token = boost::asio::default_completion_token_t<Executor>());

/// Spawn a coroutine returning nothing. @see co_spawn
template <typename Executor, typename AwaitableExecutor,
    BOOST_ASIO_COMPLETION_TOKEN_FOR(void(std::exception_ptr))
        CompletionToken = boost::asio::default_completion_token_t<Executor>>
  requires(boost::asio::execution::is_executor<Executor>::value
      || boost::asio::is_executor<Executor>::value)
auto co_spawn(const Executor& ex, boost::asio::awaitable<void, AwaitableExecutor> a,
    CompletionToken&& token = boost::asio::default_completion_token_t<Executor>());

/// Spawn a coroutine on @p ctx's executor. @see co_spawn
template <typename ExecutionContext, typename T, typename AwaitableExecutor,
    BOOST_ASIO_COMPLETION_TOKEN_FOR(detail::spawn_signature_t<T>)
        CompletionToken = boost::asio::default_completion_token_t<
            typename ExecutionContext::executor_type>>
  requires std::is_convertible_v<ExecutionContext&, boost::asio::execution_context&>
auto co_spawn(ExecutionContext& ctx, boost::asio::awaitable<T, AwaitableExecutor> a,
    CompletionToken&& token = boost::asio::default_completion_token_t<
        typename ExecutionContext::executor_type>());

/// Spawn the coroutine that @p f returns; @p f is called inside the task.
/** @see co_spawn */
template <typename Executor, typename F,
    BOOST_ASIO_COMPLETION_TOKEN_FOR(detail::function_spawn_signature<F>)
        CompletionToken = boost::asio::default_completion_token_t<Executor>>
  requires(boost::asio::execution::is_executor<Executor>::value
      || boost::asio::is_executor<Executor>::value)
  && std::is_invocable_v<F>
auto co_spawn(const Executor& ex, F&& f,
    CompletionToken&& token = boost::asio::default_completion_token_t<Executor>());

/// Spawn the coroutine that @p f returns, on @p ctx's executor. @see co_spawn
template <typename ExecutionContext, typename F,
    BOOST_ASIO_COMPLETION_TOKEN_FOR(detail::function_spawn_signature<F>)
        CompletionToken = boost::asio::default_completion_token_t<
            typename ExecutionContext::executor_type>>
  requires std::is_convertible_v<ExecutionContext&, boost::asio::execution_context&>
  && std::is_invocable_v<F>
auto co_spawn(ExecutionContext& ctx, F&& f,
    CompletionToken&& token = boost::asio::default_completion_token_t<
        typename ExecutionContext::executor_type>());

} // namespace spawn_functions

using namespace spawn_functions;

/// The task context of the code running now: a coroutine started by arc::co_spawn.
/**
 * These functions read a thread-local pointer that the task's executor sets
 * while it runs the coroutine. While a coroutine runs on a foreign executor
 * (say, resumed through bind_executor(other, use_awaitable)), they see
 * whatever task, if any, is running the current thread, usually none, until
 * it is back on its own executor. Read this_task::source() first and keep it
 * if the reason is needed there.
 */
namespace this_task {

/// True when called from inside an arc task.
bool in_task() noexcept;

/// The task's first cancellation reason; empty if not cancelled or not in a task.
cancel_reason reason() noexcept;

/// True if the task has been asked to cancel.
bool cancelled() noexcept;

/// How many cancellation requests reached the task; 0 outside a task.
std::size_t requests() noexcept;

/// The task's cancel_source.
/**
 * Cancelling it cancels the task; make_child() makes sources that follow it.
 * @throws boost::system::system_error(arc::error::not_in_task) outside a task.
 */
cancel_source source();

} // namespace this_task
} // namespace arc

#include <arc/impl/co_spawn.hpp>

#endif
