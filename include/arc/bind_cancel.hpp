// arc: Asio Reasoned Cancellation
#ifndef ARC_BIND_CANCEL_HPP
#define ARC_BIND_CANCEL_HPP

#include <arc/cancel_source.hpp>
#include <arc/detail/bound_handler.hpp>

#include <boost/asio/async_result.hpp>

#include <type_traits>
#include <utility>

namespace arc {

/// A completion token adapter that binds the operation to a cancel_source.
/**
 * @see bind_cancel
 */
template <typename CompletionToken>
class bind_cancel_t
{
public:
  template <typename T>
  bind_cancel_t(cancel_source source, T&& token)
    : source_(std::move(source)), token_(std::forward<T>(token))
  {
  }

  /// The source the operation is bound to.
  const cancel_source& source() const noexcept { return source_; }

  /// The wrapped token.
  CompletionToken& token() noexcept { return token_; }
  const CompletionToken& token() const noexcept { return token_; }

  /// @cond INTERNAL
  cancel_source source_;
  CompletionToken token_;
  /// @endcond
};

/// Bind the operation started with @p token to @p source.
/**
 * Each operation gets its own node in the source, so any number of
 * operations may be bound to one source at once, and each is cancelled when
 * the source is. The node is disarmed when the operation completes, so a
 * later cancel never reaches a finished operation.
 *
 * @param source  the source; cancel(reason) on it cancels the operation.
 * @param token   completion token; its own cancellation slot, if any (a
 *                coroutine's, say), still reaches the operation too.
 *
 * @par Completion Signature
 * That of the operation, unchanged.
 *
 * @par Per-Operation Cancellation
 * The operation sees a slot owned by arc. A request on @p source is emitted
 * with the union of the types requested so far (terminal by default) on the
 * operation's executor: the handler's associated executor, with the
 * initiation's get_executor() as its fallback; with neither, the source's
 * executor. If none is known, the emit runs on the delivering thread, as with
 * a plain Asio signal. Nothing is delivered before this initiating function
 * has returned: if @p source is already cancelled, or is cancelled during the
 * initiation, the emit is posted right after it (with no executor at all:
 * delivered by this initiating function once the operation's own initiation
 * has returned).
 *
 * @par Thread Safety
 * The source may be cancelled from any thread.
 *
 * @par Example
 * From test/beast.cpp:
 * @code
 * http::async_write(p.client, req, arc::bind_cancel(src, [&](error_code ec, std::size_t) {
 *   wrote = ec; // operation_aborted once src.cancel(reason) reached it
 * }));
 * @endcode
 */
template <typename CompletionToken>
bind_cancel_t<std::decay_t<CompletionToken>> bind_cancel(cancel_source source,
    CompletionToken&& token);

/// A completion token adapter that binds to a source and appends the reason.
/**
 * @see with_reason
 */
template <typename CompletionToken>
class with_reason_t : public bind_cancel_t<CompletionToken>
{
public:
  using bind_cancel_t<CompletionToken>::bind_cancel_t;
};

/// Bind to @p source, like bind_cancel, and append the cancellation reason to the completion.
/**
 * @param source  the source that cancels the operation.
 * @param token   completion token for the appended signature.
 *
 * @par Completion Signature
 * The operation's, with cancel_reason appended: an operation completing with
 * @code void(boost::system::error_code, std::size_t) @endcode
 * completes with
 * @code void(boost::system::error_code, std::size_t, arc::cancel_reason) @endcode
 * The reason is the one the operation was cancelled with (from @p source, or
 * from an adapter such as arc::cancel_after); it is empty if the operation
 * was not asked to cancel, and reason::unspecified() if the request came
 * through the token's own plain Asio slot.
 *
 * @par Per-Operation Cancellation
 * As bind_cancel.
 *
 * @par Thread Safety
 * The source may be cancelled from any thread.
 *
 * @par Example
 * From test/beast.cpp:
 * @code
 * http::async_read(p.server, p.buffer, p.request,
 *     arc::with_reason(src, [&](error_code ec, std::size_t, arc::cancel_reason r) {
 *       // after src.cancel(R): ec == operation_aborted, r == R
 *     }));
 * @endcode
 */
template <typename CompletionToken>
with_reason_t<std::decay_t<CompletionToken>> with_reason(cancel_source source,
    CompletionToken&& token);

} // namespace arc

#include <arc/impl/bind_cancel.hpp>

#endif
