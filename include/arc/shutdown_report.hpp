// arc: Asio Reasoned Cancellation
#ifndef ARC_SHUTDOWN_REPORT_HPP
#define ARC_SHUTDOWN_REPORT_HPP

#include <arc/cancel_reason.hpp>
#include <arc/task_info.hpp>

#include <chrono>
#include <cstddef>
#include <exception>
#include <iosfwd>
#include <string>
#include <vector>

namespace arc {

/// How long a graceful shutdown waits.
/**
 * Both durations count from the start of the shutdown. Every member has a
 * default initialiser, so designated initialisers may name only some.
 */
struct shutdown_options
{
  /// After this, what still runs is cancelled again: terminal, kind `escalated`.
  std::chrono::steady_clock::duration grace = std::chrono::seconds(5);

  /// After this, the shutdown stops waiting and reports the stragglers.
  std::chrono::steady_clock::duration force_after = std::chrono::seconds(10);
};

/// A task that failed while a shutdown waited for it.
struct failed_task
{
  task_info info;        ///< As it was when it failed.
  std::exception_ptr error; ///< What it threw.
  std::string what;      ///< The exception's what(), or "unknown exception".
};

/// What a graceful shutdown saw: what an operator reads to find what blocks it.
/**
 * Finished tasks are counted, not listed: a group may hold 10^6 children,
 * and the ones that ended when asked are the ones nobody needs to read about.
 * Every task that needed attention is listed: the escalated, the failed and
 * the stragglers.
 */
struct shutdown_report
{
  cancel_reason reason;                       ///< The shutdown's reason.
  std::chrono::steady_clock::duration elapsed{}; ///< From the start to the completion.
  std::size_t finished = 0;                   ///< Tasks that completed during the shutdown.
  std::vector<task_info> escalated;           ///< Cancelled again after the grace; status `done` if they then finished.
  std::vector<failed_task> failed;            ///< Failed during the shutdown (also given to on_error).
  std::vector<task_info> stragglers;          ///< Still running when the shutdown gave up, the oldest first.
  /// The shields a context's shutdown waited for (arc::async_shutdown(ctx),
  /// shutdown_on_signals): finished, forced at their deadline, or still
  /// running when it gave up. Empty for a group's own shutdown.
  std::vector<shield_info> shields;

  /// True if nothing was left running: no straggler and no shield still running.
  bool complete() const noexcept;
};

/// For an incident: one line per straggler (the oldest first), one per
/// escalated or failed task, one per shield, and a summary line.
std::ostream& operator<<(std::ostream& os, const shutdown_report& report);

} // namespace arc

#endif
