// arc: Asio Reasoned Cancellation
#ifndef ARC_PERSISTENT_TASK_GROUP_HPP
#define ARC_PERSISTENT_TASK_GROUP_HPP

#include <arc/cancel_reason.hpp>
#include <arc/co_spawn.hpp>
#include <arc/detail/group_state.hpp>
#include <arc/shutdown_report.hpp>
#include <arc/task_info.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/system/error_code.hpp>

#include <cstddef>
#include <exception>
#include <source_location>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace arc {

/// Options of a persistent_task_group.
/** Every member has a default initialiser, so designated initialisers that
 * name only some of them compile without -Wmissing-field-initializers. */
struct group_options
{
  /// The group's name, in reports and in the default error line.
  std::string name{};

  /// Called once for each child that fails, at once, on the child's executor.
  /**
   * A child fails when it ends with an exception that is not its own
   * cancellation (an error raised while it was being cancelled is a failure
   * too). Empty: print one line to stderr naming the group, the task, its
   * spawn site and the exception's what(). An exception thrown by on_error
   * leaves the io_context's run(), as any handler's does; the child's own
   * completion handler has been delivered by then.
   */
  error_handler on_error{};
};

/// Options of one spawn.
struct spawn_options
{
  /// The task's name, in reports, in task_info and from this_task::name().
  std::string name{};

  /// The executor the child runs on; empty: the group's. A strand per
  /// connection on a multi-threaded io_context, for instance.
  boost::asio::any_io_executor executor{};
};

template <typename T>
class task_handle;
class group_ref;

namespace this_task {
group_ref group();
} // namespace this_task

/// A copyable reference to a persistent_task_group.
/**
 * Every member but the constructors may be called from any thread. A
 * group_ref keeps the group's state alive, not the group: once the
 * persistent_task_group that owns it is destroyed, the group is closed and
 * spawn reports arc::error::group_closed. this_task::group() returns one.
 */
class group_ref
{
public:
  /// The executor children run on.
  using executor_type = boost::asio::any_io_executor;

  /// An empty reference; every member but operator bool needs a group.
  group_ref() noexcept = default;

  /// True if this refers to a group.
  explicit operator bool() const noexcept { return static_cast<bool>(state_); }

  /// The executor children run on.
  executor_type get_executor() const noexcept;

  /// Spawn a child and return a handle to it; the child runs on if the handle is dropped.
  /**
   * @param s      an awaitable, or a function returning one (called inside the
   *               child's task context).
   * @param opts   the child's name.
   * @param where  the spawn site, recorded in task_info.
   * @throws boost::system::system_error(arc::error::group_closed) if the
   *         group is closed; the awaitable is then destroyed, never run.
   */
  template <typename Spawnable>
    requires detail::group_spawnable<Spawnable>
  task_handle<detail::spawn_value_t<Spawnable>> spawn(Spawnable&& s, spawn_options opts = {},
      std::source_location where = std::source_location::current()) const;

  /// Spawn a child; @p token receives its result, as arc::co_spawn's does.
  /**
   * @par Completion Signature
   * @code void(std::exception_ptr, T) @endcode for awaitable<T>,
   * @code void(std::exception_ptr) @endcode for awaitable<void>. A child
   * ended by its cancellation completes with arc::cancelled_error carrying
   * its reason; a child that failed, with its exception (also given to
   * on_error). On a closed group the token completes with
   * system_error(arc::error::group_closed), posted, and the awaitable is
   * destroyed, never run.
   *
   * @par Per-Operation Cancellation
   * As arc::co_spawn: a request through the token's slot cancels the child.
   */
  template <typename Spawnable, typename CompletionToken>
    requires detail::group_spawnable<Spawnable>
      && detail::group_token_for<CompletionToken, Spawnable>
  auto spawn(Spawnable&& s, CompletionToken&& token,
      std::source_location where = std::source_location::current()) const;

  /// Spawn a named child; @p token receives its result. @see spawn
  template <typename Spawnable, typename CompletionToken>
    requires detail::group_spawnable<Spawnable>
      && detail::group_token_for<CompletionToken, Spawnable>
  auto spawn(Spawnable&& s, spawn_options opts, CompletionToken&& token,
      std::source_location where = std::source_location::current()) const;

  /// Cancel every current child with @p reason.
  /**
   * Each child records reason::parent(reason). The group stays open: a child
   * spawned afterwards starts uncancelled. Returns the number of children
   * the request reached.
   */
  std::size_t cancel(cancel_reason reason,
      boost::asio::cancellation_type_t type = boost::asio::cancellation_type::terminal) const;

  /// Stop accepting children; the current ones run on.
  void close() const noexcept;

  /// True once the group is closed.
  bool closed() const noexcept;

  /// The number of children that have not completed.
  std::size_t size() const noexcept;

  /// The group's name.
  const std::string& name() const noexcept;

  /// What each current child is doing, in spawn order.
  std::vector<task_info> snapshot() const;

  /// Wait until the group has no children.
  /**
   * Completes at once (posted) if it has none now. The group stays open
   * meanwhile: a join waits for children spawned while it waits too.
   *
   * @par Completion Signature
   * @code void(boost::system::error_code) @endcode
   *
   * @par Per-Operation Cancellation
   * Terminal, partial and total: stops the waiting only, with
   * boost::asio::error::operation_aborted; the children run on.
   */
  template <typename CompletionToken = boost::asio::default_completion_token_t<executor_type>>
  auto async_join(CompletionToken&& token = boost::asio::default_completion_token_t<executor_type>()) const;

  /// Close the group, cancel every child, wait; escalate after the grace.
  /**
   * 1. Closes the group (spawn reports arc::error::group_closed).
   * 2. Cancels every child with @p reason: each records reason::parent(reason).
   * 3. Waits for the group to be empty.
   * 4. After `opts.grace`, cancels what still runs again, terminal, with
   *    reason::escalated(reason); each of those records it as itself.
   * 5. After `opts.force_after`, stops waiting.
   *
   * @par Completion Signature
   * @code void(boost::system::error_code, arc::shutdown_report) @endcode
   * `ec` is empty when every child has finished; arc::error::shutdown_incomplete
   * after `force_after`, with the stragglers in the report.
   *
   * @par Per-Operation Cancellation
   * Terminal, partial and total: stops the waiting and the escalation, with
   * boost::asio::error::operation_aborted and the report so far. The group
   * stays closed and its children cancelled.
   */
  template <typename CompletionToken = boost::asio::default_completion_token_t<executor_type>>
  auto async_shutdown(cancel_reason reason, shutdown_options opts = {},
      CompletionToken&& token = boost::asio::default_completion_token_t<executor_type>()) const;

protected:
  explicit group_ref(detail::group_ref_ptr s) noexcept : state_(std::move(s)) {}

  detail::group_ref_ptr state_;

  friend group_ref this_task::group();
};

/// A long-lived, supervisor-style set of tasks on one executor.
/**
 * Children are independent: one that fails is reported to on_error and its
 * siblings run on; nothing of a finished child is kept. cancel() reaches
 * every current child and leaves the group open, so that a server can stop
 * what it runs now and go on accepting (unlike Trio's nursery or a Kotlin
 * scope, which a cancellation ends).
 *
 * Destroying the group closes it and cancels the children it still has with
 * a `shutdown` reason; they complete on their own executors.
 */
class persistent_task_group : public group_ref
{
public:
  /// A group whose children run on @p ex.
  template <typename Executor>
    requires(boost::asio::execution::is_executor<Executor>::value
        || boost::asio::is_executor<Executor>::value)
  explicit persistent_task_group(const Executor& ex, group_options opts = {})
    : group_ref(detail::group_ref_ptr::adopt(detail::group_state::create(
        boost::asio::any_io_executor(ex), std::move(opts.name), std::move(opts.on_error))))
  {
  }

  /// A group whose children run on @p ctx's executor.
  template <typename ExecutionContext>
    requires std::is_convertible_v<ExecutionContext&, boost::asio::execution_context&>
  explicit persistent_task_group(ExecutionContext& ctx, group_options opts = {})
    : persistent_task_group(ctx.get_executor(), std::move(opts))
  {
  }

  persistent_task_group(const persistent_task_group&) = delete;
  persistent_task_group& operator=(const persistent_task_group&) = delete;

  /// Close the group and cancel its children (reason kind `shutdown`).
  ~persistent_task_group();
};

/// A handle to one child of a group. Dropping it leaves the child running.
/**
 * Copyable; every member may be called from any thread. It keeps the
 * child's record (and, once done, its result) alive, not the child.
 */
template <typename T = void>
class task_handle
{
public:
  /// An empty handle.
  task_handle() noexcept = default;

  /// True if this refers to a child.
  explicit operator bool() const noexcept { return static_cast<bool>(child_); }

  /// Cancel the child with @p reason; false if it had completed or was cancelled already.
  bool cancel(cancel_reason reason = reason::user(),
      boost::asio::cancellation_type_t type = boost::asio::cancellation_type::terminal) const;

  /// True once the child has completed.
  bool done() const noexcept;

  /// True once the child has been asked to cancel (and not uncancelled since).
  bool cancelled() const noexcept;

  /// Withdraw one cancellation request from the child (CPython's task.uncancel()).
  /**
   * As this_task::uncancel(), from outside: returns the requests left; at
   * zero the child no longer counts as cancelled, and a request not yet
   * delivered to it is withdrawn.
   * @throws boost::system::system_error(arc::error::not_cancelled) if none is
   *         left, (arc::error::already_finished) once the child has completed.
   */
  std::size_t uncancel() const;

  /// True if the child has completed because of a cancellation.
  /**
   * It ended with its cancellation (an exception that is a cancellation), or
   * it completed while a cancellation was still held back by a defer-shield
   * or a cleanup it was in (it did what its shield promised).
   */
  bool ended_cancelled() const noexcept;

  /// The child's id, name, spawn site, age, status and first reason.
  task_info info() const;

  /// The executor of the child's group; empty for an empty handle.
  /**
   * async_wait and arc::cancel_and_wait complete on it when their handler
   * has no executor of its own.
   */
  boost::asio::any_io_executor get_executor() const noexcept;

  /// Wait for the child to complete and receive its result.
  /**
   * Each waiter gets the result (copied, for awaitable<T>): the exception the
   * spawn token would get, and the value.
   *
   * @par Completion Signature
   * @code void(std::exception_ptr, T) @endcode, or
   * @code void(std::exception_ptr) @endcode for T = void.
   *
   * @par Per-Operation Cancellation
   * Terminal, partial and total: stops the waiting only, with
   * system_error(boost::asio::error::operation_aborted); the child runs on.
   */
  template <typename CompletionToken =
                boost::asio::default_completion_token_t<boost::asio::any_io_executor>>
  auto async_wait(CompletionToken&& token =
                      boost::asio::default_completion_token_t<boost::asio::any_io_executor>()) const;

private:
  friend class group_ref;
  explicit task_handle(detail::group_child_ptr c) noexcept : child_(std::move(c)) {}

  detail::group_child_ptr child_;
};

namespace this_task {

/// The group the current task is a child of; empty if none (or outside a task).
group_ref group();

/// The current task's name, given at spawn; empty if none (or outside a task).
std::string_view name() noexcept;

} // namespace this_task
} // namespace arc

#include <arc/impl/persistent_task_group.hpp>

#endif
