// arc: Asio Reasoned Cancellation
#ifndef ARC_DETAIL_SHIELD_SCOPE_HPP
#define ARC_DETAIL_SHIELD_SCOPE_HPP

#include <arc/cancel_source.hpp>
#include <arc/detail/intrusive.hpp>
#include <arc/task_info.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <mutex>
#include <optional>
#include <source_location>
#include <string>
#include <vector>

namespace arc::detail {

class registry_core;

// The earlier of now + @p after and @p at; time_point::max() for neither. A
// shield's deadline and a shield executor's task deadline are both this.
inline std::chrono::steady_clock::time_point earliest_deadline(
    const std::optional<std::chrono::steady_clock::duration>& after,
    const std::optional<std::chrono::steady_clock::time_point>& at) noexcept
{
  auto when = std::chrono::steady_clock::time_point::max();
  if (after)
    when = std::chrono::steady_clock::now() + *after;
  if (at && *at < when)
    when = *at;
  return when;
}

// What the copies of one shield executor share: the count of the work
// outstanding through them, and the waiters for that count to reach zero.
//
// pending_ counts functions submitted and not yet run (or destroyed) and
// copies of the executor that track outstanding work (Asio holds one for
// every pending asynchronous operation whose handler runs there, and for a
// co_spawn'd coroutine's life). While it is above zero the scope holds one
// reference to itself, so a function in flight keeps it alive with a plain
// pointer; begin() and end() cost one atomic operation each.
//
// The registry lists the scope (weakly) from its making to its destruction;
// a context's shutdown waits, through when_idle(), for pending_ to reach zero.
class shield_scope
{
public:
  static ref_ptr<shield_scope> make(std::string name, std::source_location where,
      std::optional<std::chrono::steady_clock::duration> deadline,
      std::optional<std::chrono::steady_clock::time_point> deadline_at,
      const asio::any_io_executor& ex);

  void add_ref() noexcept { refs_.add(); }
  bool try_add_ref() noexcept { return refs_.try_add(); }
  void release() noexcept
  {
    if (refs_.release())
      delete this;
  }

  // One more item of outstanding work.
  void begin() noexcept
  {
    if (pending_.fetch_add(1, std::memory_order_relaxed) == 0)
      add_ref();
  }

  // One item fewer. May destroy the scope.
  void end() noexcept
  {
    if (pending_.fetch_sub(1, std::memory_order_seq_cst) == 1)
      became_idle();
  }

  std::size_t pending() const noexcept { return pending_.load(std::memory_order_acquire); }

  // Throws system_error(error::context_destroyed) once the context is gone.
  void check_alive() const;

  // The deadline of a task spawned now, or time_point::max().
  std::chrono::steady_clock::time_point deadline_from_now() const noexcept;
  const std::source_location& where() const noexcept { return where_; }

  shield_info info() const;

  // Fire @p s (reason user "shield executor idle") once nothing is pending:
  // at once if nothing is.
  void when_idle(cancel_source s);

private:
  shield_scope(std::string name, std::source_location where,
      std::optional<std::chrono::steady_clock::duration> deadline,
      std::optional<std::chrono::steady_clock::time_point> deadline_at,
      const asio::any_io_executor& ex);
  ~shield_scope();
  void became_idle() noexcept;

  ref_count refs_;
  std::atomic<std::size_t> pending_{0};
  std::atomic<bool> has_waiters_{false};
  std::mutex mutex_; // guards waiters_
  std::vector<cancel_source> waiters_;
  std::uint64_t id_ = 0;
  std::string name_;
  std::source_location where_;
  std::chrono::steady_clock::time_point start_;
  std::optional<std::chrono::steady_clock::duration> deadline_;
  std::optional<std::chrono::steady_clock::time_point> deadline_at_;
  ref_ptr<registry_core> core_;
};

using shield_scope_ref = ref_ptr<shield_scope>;

} // namespace arc::detail

#endif
