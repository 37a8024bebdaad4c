// arc: Asio Reasoned Cancellation
#ifndef ARC_TASK_INFO_HPP
#define ARC_TASK_INFO_HPP

#include <arc/cancel_reason.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <iosfwd>
#include <source_location>
#include <string>

namespace arc {

/// Where a group's child is in its life.
enum class task_status
{
  running,    ///< Not asked to cancel.
  cancelling, ///< Asked to cancel, still running (its cleanup, or ignoring it).
  escalated,  ///< Cancelled again, terminal, after a shutdown's grace.
  done        ///< Completed.
};

/// What a group knows about one child, as of when it was read.
struct task_info
{
  std::uint64_t id = 0;       ///< Unique within its group, from 1.
  std::string name;           ///< Given at spawn; may be empty.
  std::string group;          ///< The group's name.
  std::source_location where; ///< The spawn site.
  std::chrono::steady_clock::duration age{}; ///< Since the spawn.
  task_status status = task_status::running;
  std::size_t requests = 0;   ///< Cancellation requests that reached it.
  cancel_reason reason;       ///< The first; empty if not cancelled.
};

/// Where a shield is in its life.
enum class shield_status
{
  running, ///< Its work has not completed.
  done,    ///< Its work completed (by itself, or after its deadline forced it).
};

/// What the registry knows about one shield, as of when it was read.
struct shield_info
{
  std::uint64_t id = 0;       ///< Unique within its io_context's registry, from 1.
  std::string name;           ///< shield_options::name; may be empty.
  std::source_location where; ///< Where the shield was entered.
  std::chrono::steady_clock::duration age{}; ///< Since it was entered.
  /// Its deadline, or time_point::max() if it has none.
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  shield_status status = shield_status::running;
  bool forced = false;        ///< Its deadline passed and force-cancelled its work.
  bool detached = false;      ///< shield_policy::detach: nobody awaits it.
  /// A shield executor (make_shield_executor) rather than one shielded awaitable.
  bool executor = false;
  /// For a shield executor: the work outstanding through it (functions not
  /// yet run, operations whose handlers will run there, tasks spawned on it).
  std::size_t pending = 0;
};

/// A group's error handler: the child's exception and what is known of it.
using error_handler = std::function<void(std::exception_ptr, const task_info&)>;

/// "running", "cancelling", "escalated" or "done".
const char* to_string(task_status s) noexcept;

/// One line: `group/name #id (file:line), age 12 ms, cancelling: <reason>`.
std::ostream& operator<<(std::ostream& os, const task_info& info);

/// "running" or "done".
const char* to_string(shield_status s) noexcept;

/// One line: `shield name #id (file:line), age 12 ms, deadline in 88 ms, running`;
/// a forced one ends `done, forced at its deadline`; a shield executor's reads
/// `shield executor name #id (file:line), age 12 ms, 3 pending, running`.
std::ostream& operator<<(std::ostream& os, const shield_info& info);

} // namespace arc

#endif
