// arc: Asio Reasoned Cancellation
#ifndef ARC_REGISTRY_HPP
#define ARC_REGISTRY_HPP

#include <arc/cancel_reason.hpp>
#include <arc/detail/registry_core.hpp>
#include <arc/persistent_task_group.hpp>
#include <arc/shutdown_report.hpp>
#include <arc/task_info.hpp>

#include <boost/asio/async_result.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/system/error_code.hpp>

#include <cstddef>
#include <exception>
#include <functional>
#include <initializer_list>
#include <source_location>
#include <string>
#include <vector>

namespace arc {

/// A group as the registry saw it.
struct group_info
{
  std::string name;            ///< The group's name.
  std::size_t size = 0;        ///< Its live children.
  bool closed = false;         ///< Whether it still accepts children.
  std::vector<task_info> tasks; ///< Its live children, in spawn order.
};

/// Called for each task destroyed unfinished with its io_context.
using abandoned_handler = std::function<void(const task_info&)>;

/// The execution context service that knows every group and shield on its context.
/**
 * A persistent_task_group registers itself on construction and unregisters
 * on destruction. A shield (arc::shield) is registered while its work runs.
 *
 * When an io_context is destroyed, Asio destroys the handlers and coroutine
 * frames it still owns without running them: a task that has not finished
 * by then never runs its cleanup, and arc cannot change that. What arc does
 * is account for it: each such child leaves its group, nothing leaks, and
 * on_abandoned reports it (by default, one line on stderr).
 *
 * Every member may be called from any thread.
 */
class registry final : public boost::asio::execution_context::service
{
public:
  /// The service's key, for boost::asio::use_service.
  static inline boost::asio::execution_context::id id;

  /// Made by boost::asio::use_service<arc::registry>(ctx).
  explicit registry(boost::asio::execution_context& ctx);
  ~registry() override;

  /// A snapshot of every group on the context, in registration order.
  std::vector<group_info> groups() const;

  /// A snapshot of every shield whose work is running, in the order they were
  /// entered, then every shield executor with work pending.
  std::vector<shield_info> shields() const;

  /// Set the hook called when a detached shield's work fails and nobody receives it.
  /**
   * Called once, on the work's executor. Empty (the default): one line on
   * stderr. An exception it throws is dropped: the work's completion has
   * nowhere to send it.
   */
  void on_shield_error(std::function<void(std::exception_ptr, const shield_info&)> h);

  /// Set the hook called for each task destroyed unfinished with the context.
  /**
   * Called during the context's destruction, on the destroying thread. A
   * shield's work is reported too, with `group` "(shield)", and so is a
   * shield executor with work still pending, once, with `group`
   * "(shield executor)", its name, where it was made and its age.
   */
  void on_abandoned(abandoned_handler h);

private:
  friend struct detail::registry_access;
  void shutdown() override;

  detail::registry_core_ptr core_;
};

/// A snapshot of every group on @p ctx. @see registry::groups
std::vector<group_info> groups(boost::asio::execution_context& ctx);

/// Shut down every group on @p ctx, as persistent_task_group::async_shutdown does each.
/**
 * The groups shut down together, each with @p opts. The report merges
 * theirs: finished tasks are counted, the escalated, the failed and the
 * stragglers listed (the stragglers the oldest first).
 *
 * @par Completion Signature
 * @code void(boost::system::error_code, arc::shutdown_report) @endcode
 * `ec` is empty when every child of every group has finished, and
 * arc::error::shutdown_incomplete if any group gave up after force_after.
 *
 * @par Per-Operation Cancellation
 * Terminal, partial and total: stops the waiting and every group's
 * escalation, with boost::asio::error::operation_aborted and the report so
 * far. The groups stay closed and their children cancelled.
 */
template <typename ExecutionContext,
    typename CompletionToken = boost::asio::default_completion_token_t<
        typename ExecutionContext::executor_type>>
  requires std::is_convertible_v<ExecutionContext&, boost::asio::execution_context&>
auto async_shutdown(ExecutionContext& ctx, cancel_reason reason, shutdown_options opts = {},
    CompletionToken&& token = boost::asio::default_completion_token_t<
        typename ExecutionContext::executor_type>());

/// Shut down every group on @p ctx when one of @p signals arrives.
/**
 * - The first signal n starts async_shutdown(ctx, reason::signal(n), opts);
 *   the reason's where() is @p where, the call to shutdown_on_signals.
 * - A second signal escalates at once, as the grace's end would.
 * - A third signal cancels what still runs once more, as escalated (so that
 *   a guard counting requests, arc::escalate::after(2), lets it through), and
 *   gives up waiting; so does force_after, without the extra request. The
 *   report names the stragglers and `ec` is arc::error::shutdown_incomplete.
 *
 * @par Completion Signature
 * @code void(boost::system::error_code, arc::shutdown_report) @endcode
 *
 * @par Per-Operation Cancellation
 * Terminal, partial and total: before a signal, stops listening
 * (operation_aborted, an empty report); after one, stops the waiting, as
 * async_shutdown's does.
 */
template <typename ExecutionContext,
    typename CompletionToken = boost::asio::default_completion_token_t<
        typename ExecutionContext::executor_type>>
  requires std::is_convertible_v<ExecutionContext&, boost::asio::execution_context&>
auto shutdown_on_signals(ExecutionContext& ctx, std::initializer_list<int> signals,
    shutdown_options opts = {},
    CompletionToken&& token = boost::asio::default_completion_token_t<
        typename ExecutionContext::executor_type>(),
    std::source_location where = std::source_location::current());

} // namespace arc

#include <arc/impl/registry.hpp>

#endif
