// arc: Asio Reasoned Cancellation
#ifndef ARC_REASONED_HPP
#define ARC_REASONED_HPP

#include <arc/cancel_reason.hpp>
#include <arc/error.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <type_traits>
#include <utility>

namespace arc {

/// A completion token adapter: the operation's failure is reported as an exception that carries the reason.
/**
 * An operation whose completion signature starts with an error_code completes
 * with a std::exception_ptr in its place instead:
 * - null on success;
 * - an arc::cancelled_error if the error is a cancellation (is_cancellation()):
 *   its reason() is why the operation was cancelled, and its code() the arc
 *   code that matches the reason's kind (timed_out, shutdown, signalled,
 *   parent_cancelled, …), which compares equal to
 *   boost::system::errc::operation_canceled;
 * - a boost::system::system_error for any other error.
 *
 * The other arguments are passed on unchanged, and other signatures are left
 * as they are. With boost::asio::use_awaitable (see arc::use_awaitable) the
 * exception is thrown from the co_await; with use_future, from get().
 *
 * The reason is, in this order: the one the operation's arc binding recorded
 * (arc::bind_cancel, an arc slot), whichever of the two adapters is outside;
 * else the reason of the arc task the completion runs in (inside a
 * with_timeout body, the timeout); else none, and code() is the error the
 * operation reported. An error already in the "arc" category (timed_out from
 * cancel_after) is kept as the code.
 *
 * @par Example
 * From test/reasoned.cpp, `a_cancelled_task_operation_throws_the_tasks_reason`:
 * @code
 * try
 * {
 *   co_await timer.async_wait(arc::use_awaitable);
 * }
 * catch (const arc::cancelled_error& e)
 * {
 *   // e.reason() is the task's reason; e.code() == arc::error::shutdown
 * }
 * @endcode
 */
template <typename CompletionToken>
class reasoned_t
{
public:
  /// Adapt a default-constructed @p CompletionToken.
  constexpr reasoned_t() noexcept(std::is_nothrow_default_constructible_v<CompletionToken>)
    requires std::is_default_constructible_v<CompletionToken>
  = default;

  /// Adapt @p token.
  template <typename T>
    requires(!std::is_same_v<std::decay_t<T>, reasoned_t>)
  constexpr explicit reasoned_t(T&& token) : token_(std::forward<T>(token))
  {
  }

  /// The token adapted.
  CompletionToken token_{};
};

/// Adapt @p token so that failures complete as exceptions carrying the reason. @see reasoned_t
template <typename CompletionToken>
constexpr reasoned_t<std::decay_t<CompletionToken>> reasoned(CompletionToken&& token)
{
  return reasoned_t<std::decay_t<CompletionToken>>(std::forward<CompletionToken>(token));
}

/// boost::asio::use_awaitable whose failures throw arc::cancelled_error (cancellations) or system_error.
template <typename Executor = boost::asio::any_io_executor>
using use_awaitable_t = reasoned_t<boost::asio::use_awaitable_t<Executor>>;

/// The arc::use_awaitable_t token: `co_await op(arc::use_awaitable)`. @see reasoned_t
inline constexpr use_awaitable_t<> use_awaitable{};

} // namespace arc

#include <arc/impl/reasoned.hpp>

#endif
