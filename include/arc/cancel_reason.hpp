// arc: Asio Reasoned Cancellation
#ifndef ARC_CANCEL_REASON_HPP
#define ARC_CANCEL_REASON_HPP

#include <arc/detail/config.hpp>

#include <boost/system/error_code.hpp>

#include <chrono>
#include <iosfwd>
#include <source_location>
#include <string>
#include <string_view>
#include <type_traits>

namespace arc {

/// What kind of event cancelled an operation.
enum class reason_kind : unsigned char
{
  user,            ///< An explicit cancel; the default.
  timeout,         ///< A deadline expired; deadline() holds it.
  shutdown,        ///< A group or a context is stopping.
  signal,          ///< An OS signal; signal_number() holds it.
  parent,          ///< Propagated from a parent source; cause() is the parent's reason.
  shield_deadline, ///< A shield ran past its deadline.
  escalated,       ///< A guard let a repeated request through; cause() is that request.
  unspecified      ///< Cancelled through a plain Asio slot that carried no reason.
};

/// The name of @p k, e.g. "timeout".
std::string_view to_string(reason_kind k) noexcept;

namespace detail {
struct reason_rep;
} // namespace detail

/// Why something was cancelled: kind, message, tag, location, time and cause.
/**
 * An immutable value, one pointer wide and cheap to copy (one atomic
 * increment). It may be shared between threads freely. A default-constructed
 * reason is empty and means "not cancelled".
 *
 * Two reasons compare equal when they are the same recorded event, i.e. one is
 * a copy of the other.
 *
 * Build reasons with the factories in namespace arc::reason; each captures the
 * caller's std::source_location.
 */
class cancel_reason
{
public:
  /// The clock of when() and deadline().
  using clock = std::chrono::steady_clock;

  /// An empty reason: not cancelled.
  constexpr cancel_reason() noexcept = default;

  cancel_reason(const cancel_reason& other) noexcept;
  cancel_reason(cancel_reason&& other) noexcept;
  cancel_reason& operator=(const cancel_reason& other) noexcept;
  cancel_reason& operator=(cancel_reason&& other) noexcept;
  ~cancel_reason();

  /// True when this reason is empty.
  bool empty() const noexcept;

  /// True when this reason is not empty.
  explicit operator bool() const noexcept;

  /// The kind; reason_kind::unspecified when empty.
  reason_kind kind() const noexcept;

  /// The message given at the cancel site; empty if none.
  std::string_view message() const noexcept;

  /// Where the reason was made: the caller of the factory, not arc.
  /**
   * parent and unspecified reasons, which arc derives when a cancellation
   * propagates, have a default-constructed location (line 0): the cause()
   * says where. An escalated reason records where the escalation was decided.
   */
  std::source_location where() const noexcept;

  /// When the reason was made.
  clock::time_point when() const noexcept;

  /// The reason this one derives from, or an empty reason.
  const cancel_reason& cause() const noexcept;

  /// The deepest reason in the cause() chain (this one if it has no cause).
  const cancel_reason& root() const noexcept;

  /// For timeout and shield_deadline: the deadline; otherwise time_point{}.
  clock::time_point deadline() const noexcept;

  /// For signal: the signal number; otherwise 0.
  int signal_number() const noexcept;

  /// The typed payload, if it has type @p T; otherwise nullptr.
  template <typename T>
  const T* tag() const noexcept;

  /// True if a tag of any type is attached.
  bool has_tag() const noexcept;

  /// The arc::error code that matches kind(); empty if this reason is empty.
  /**
   * user and unspecified map to arc::error::cancelled, timeout to timed_out,
   * shutdown to shutdown, signal to signalled, parent to parent_cancelled,
   * shield_deadline to shield_deadline_exceeded, escalated to escalated.
   */
  boost::system::error_code code() const noexcept;

  /// Same recorded event.
  friend bool operator==(const cancel_reason& a, const cancel_reason& b) noexcept
  {
    return a.rep_ == b.rep_;
  }

  /// @cond INTERNAL
  explicit cancel_reason(detail::reason_rep* adopted) noexcept : rep_(adopted) {}
  const detail::reason_rep* rep() const noexcept { return rep_; }
  /// @endcond

private:
  detail::reason_rep* rep_ = nullptr;
};

/// How to_string lays out a chain of reasons.
enum class reason_format
{
  line,     ///< One line: hops joined by " <- ", newest first (for logs).
  multiline ///< One line per hop, newest first; later hops start with "  <- ".
};

/// Print @p r and its causes, newest first.
/**
 * Each hop reads `kind ["message"] [details] [at file:line in function]`, e.g.
 * `timeout (deadline 5s) at client.cpp:42 in fetch() <- parent <- signal 15 (SIGTERM) at main.cpp:10 in main()`.
 * An empty reason prints as `none`.
 */
std::string to_string(const cancel_reason& r, reason_format f = reason_format::line);

/// Stream @p r as to_string(r).
std::ostream& operator<<(std::ostream& os, const cancel_reason& r);

/// Stream the name of @p k.
std::ostream& operator<<(std::ostream& os, reason_kind k);

/// Factories for cancel_reason. Each captures the caller's location.
namespace reason {

/// @cond INTERNAL
template <typename T>
concept tag_type = std::is_copy_constructible_v<std::decay_t<T>>
  && !std::is_same_v<std::decay_t<T>, std::source_location>;
/// @endcond

/// An explicit cancellation, optionally with a message.
cancel_reason user(std::string_view message = {},
    std::source_location where = std::source_location::current());

/// An explicit cancellation with a message and a typed tag.
template <tag_type Tag>
cancel_reason user(std::string_view message, Tag&& tag,
    std::source_location where = std::source_location::current());

/// A deadline @p after from now.
cancel_reason timeout(cancel_reason::clock::duration after,
    std::source_location where = std::source_location::current());

/// A deadline @p after from now, with a typed tag.
template <tag_type Tag>
cancel_reason timeout(cancel_reason::clock::duration after, Tag&& tag,
    std::source_location where = std::source_location::current());

/// A deadline at @p deadline.
cancel_reason timeout(cancel_reason::clock::time_point deadline,
    std::source_location where = std::source_location::current());

/// A deadline at @p deadline, with a typed tag.
template <tag_type Tag>
cancel_reason timeout(cancel_reason::clock::time_point deadline, Tag&& tag,
    std::source_location where = std::source_location::current());

/// A group or context is shutting down.
cancel_reason shutdown(std::string_view message = {},
    std::source_location where = std::source_location::current());

/// A group or context is shutting down, with a typed tag.
template <tag_type Tag>
cancel_reason shutdown(std::string_view message, Tag&& tag,
    std::source_location where = std::source_location::current());

/// An OS signal @p signo arrived.
cancel_reason signal(int signo,
    std::source_location where = std::source_location::current());

/// An OS signal @p signo arrived, with a typed tag.
template <tag_type Tag>
cancel_reason signal(int signo, Tag&& tag,
    std::source_location where = std::source_location::current());

/// Propagated from a parent whose reason is @p cause.
cancel_reason parent(cancel_reason cause);

/// A guard let @p cause through as an escalation.
cancel_reason escalated(cancel_reason cause,
    std::source_location where = std::source_location::current());

/// A shield ran past @p deadline.
cancel_reason shield_deadline(cancel_reason::clock::time_point deadline,
    std::source_location where = std::source_location::current());

/// A cancellation that came through a plain Asio slot. One shared value.
const cancel_reason& unspecified() noexcept;

} // namespace reason
} // namespace arc

#include <arc/impl/cancel_reason.hpp>

#endif
