// arc: Asio Reasoned Cancellation
#ifndef ARC_ERROR_HPP
#define ARC_ERROR_HPP

#include <arc/cancel_reason.hpp>

#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>

#include <mutex>
#include <string>
#include <type_traits>

namespace arc {

/// arc's error codes, in the Boost.System category "arc".
/**
 * The cancellation codes (cancelled … escalated) are all equivalent to the
 * condition boost::system::errc::operation_canceled, just as
 * boost::asio::error::operation_aborted is:
 * @code ec == boost::system::errc::operation_canceled @endcode
 * holds for every one of them. The other codes report misuse or outcomes.
 */
enum class error
{
  // Cancellation codes.
  cancelled = 1,            ///< Cancelled (user or unspecified reason).
  timed_out,                ///< A deadline expired.
  shutdown,                 ///< A group or context is shutting down.
  signalled,                ///< An OS signal arrived.
  parent_cancelled,         ///< A parent was cancelled.
  shield_deadline_exceeded, ///< Shielded work ran past its deadline.
  escalated,                ///< A guard let a repeated request through.

  // Outcomes and misuse.
  cancel_ignored = 100,     ///< The target swallowed a cancellation.
  group_closed,             ///< The group no longer accepts work.
  already_started,          ///< The operation was already started.
  not_in_task,              ///< Called outside a task started by arc.
  no_executor,              ///< The operation needs an executor and none was given.
  shutdown_incomplete,      ///< A shutdown gave up waiting: some tasks still run.
  not_cancelled,            ///< uncancel() with no request left to withdraw.
  already_finished,         ///< The target had finished before it could be cancelled.
  context_destroyed         ///< The executor's execution context has been destroyed.
};

/// The "arc" error category.
const boost::system::error_category& error_category() noexcept;

/// Make an error_code in the "arc" category.
boost::system::error_code make_error_code(error e) noexcept;

/// True if @p ec reports a cancellation: any arc cancellation code or Asio's operation_aborted.
bool is_cancellation(const boost::system::error_code& ec) noexcept;

/// An exception that says a cancellation happened and why.
/**
 * Derives from boost::system::system_error, so code that catches system_error
 * keeps working; code that wants the reason catches cancelled_error.
 */
class cancelled_error : public boost::system::system_error
{
public:
  /// A cancellation with reason @p r; code() is r.code() (or error::cancelled when r is empty).
  explicit cancelled_error(cancel_reason r);

  /// A cancellation reported as @p ec, caused by @p r.
  cancelled_error(boost::system::error_code ec, cancel_reason r);

  /// A copy: the same code and reason.
  cancelled_error(const cancelled_error& other);

  /// Take the code and reason of @p other.
  cancelled_error& operator=(const cancelled_error& other);

  ~cancelled_error() override;

  /// Why.
  const cancel_reason& reason() const noexcept { return reason_; }

  /// to_string(reason()), ": ", then the code's own what().
  /**
   * Made on the first call, not when the exception is made: a cancelled task
   * makes one, and most are caught without printing. Safe to call from
   * several threads at once.
   */
  const char* what() const noexcept override;

private:
  cancel_reason reason_;
  mutable std::once_flag what_once_;
  mutable std::string what_;
};

} // namespace arc

template <>
struct boost::system::is_error_code_enum<arc::error> : std::true_type
{
};

#endif
