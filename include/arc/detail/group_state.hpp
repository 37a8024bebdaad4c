// arc: Asio Reasoned Cancellation
#ifndef ARC_DETAIL_GROUP_STATE_HPP
#define ARC_DETAIL_GROUP_STATE_HPP

#include <arc/cancel_reason.hpp>
#include <arc/error.hpp>
#include <arc/detail/initiation.hpp>
#include <arc/detail/intrusive.hpp>
#include <arc/detail/source_state.hpp>
#include <arc/detail/spin_lock.hpp>
#include <arc/detail/task_state.hpp>
#include <arc/shutdown_report.hpp>
#include <arc/task_info.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/recycling_allocator.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <concepts>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <source_location>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace arc {
struct spawn_options;
} // namespace arc

namespace arc::detail {

// --- What a group can spawn ---------------------------------------------------

template <typename S>
struct awaitable_value
{
};

template <typename T, typename Executor>
struct awaitable_value<asio::awaitable<T, Executor>>
{
  using type = T;
};

template <typename S>
concept group_awaitable = requires { typename awaitable_value<std::decay_t<S>>::type; };

template <typename S>
concept group_factory = std::is_invocable_v<std::decay_t<S>&>
    && group_awaitable<std::invoke_result_t<std::decay_t<S>&>>;

template <typename S>
concept group_spawnable = group_awaitable<S> || group_factory<S>;

template <typename S>
struct spawn_value
{
  using type = typename awaitable_value<std::invoke_result_t<std::decay_t<S>&>>::type;
};

template <group_awaitable S>
struct spawn_value<S>
{
  using type = typename awaitable_value<std::decay_t<S>>::type;
};

template <typename S>
using spawn_value_t = typename spawn_value<S>::type;

// A token for a spawn of @p S, and not an argument that merely sits in the
// token's place.
template <typename Token, typename S>
concept group_token_for = !std::same_as<std::decay_t<Token>, spawn_options>
    && !std::same_as<std::decay_t<Token>, std::source_location>
    && asio::completion_token_for<Token, spawn_signature_t<spawn_value_t<S>>>;

class group_state;
using group_ref_ptr = ref_ptr<group_state>;
class registry_core; // registry_core.hpp

// How a group's generation reaches its children: as their parent
// (reason::parent), except a shutdown's escalation, which each child records
// as itself (kind `escalated`).
const link_policy& group_child_policy() noexcept;

// --- A group's record of one child --------------------------------------------

// Lives from the spawn until the child has completed and every task_handle to
// it is gone. The group's list holds it only while the child is live: the
// group keeps nothing of a finished child.
//
// The record is also the child's node in its generation (a cancel_node): a
// generation's request reaches the task through it, with the group's policy.
// So a child needs no link of its own in between, and its task no parent.
class group_child : public cancel_node
{
public:
  group_child(const group_child&) = delete;
  group_child& operator=(const group_child&) = delete;

  void add_ref() noexcept { refs_.add(); }
  bool try_add_ref() noexcept override { return refs_.try_add(); }
  void release() noexcept override
  {
    if (refs_.release())
      destroy();
  }

  // cancel_node: a request on the generation, passed on to the task.
  void notify(const cancel_reason& r, asio::cancellation_type_t t,
      asio::cancellation_type_t all) override;

  // Follow @p generation (the task is set): link into it, and take what it
  // has already been asked (level-triggered).
  void follow(source_state* generation);
  // Stop following the generation (the child has ended).
  void leave() noexcept;

  // The child's task, once spawned (set before its coroutine first runs).
  task_state* task() const noexcept { return task_.get(); }
  void set_task(task_ref t) noexcept { task_ = std::move(t); }

  group_state* group() const noexcept { return group_.get(); }
  const std::string& name() const noexcept { return name_; }
  std::uint64_t id() const noexcept { return id_; }

  bool done() const noexcept { return done_.load(std::memory_order_acquire); }

  task_info info() const;

  // The child's task has ended, on its executor: decide whether it failed,
  // give @p e the form the token gets (cancelled_error with the reason when
  // the child ended by its cancellation), keep the result for handles, leave
  // the group, and report a failure. Returns what on_error threw, if it did.
  template <typename... Args>
  std::exception_ptr complete(task_state& t, std::exception_ptr& e, const Args&... args);

  // The child will never complete: its io_context is being destroyed.
  void abandon() noexcept;

  // Fired (cancelled) when the child completes; already fired if it has.
  source_ref done_event();

  // The result, once done().
  const std::exception_ptr& error() const noexcept { return error_; }

  // Set by a shutdown's escalation (guarded by the group's mutex to set;
  // read anywhere).
  std::atomic<bool> escalated_{false};

  // Set at completion: the child ended by its cancellation, or with one
  // still held back by a shield or cleanup (task_handle::ended_cancelled).
  std::atomic<bool> ended_cancelled_{false};

  // Guarded by the group's mutex: the group's list of live children.
  group_child* prev_ = nullptr;
  group_child* next_ = nullptr;
  bool linked_ = false;
  std::uint64_t id_ = 0;

protected:
  group_child(group_state* g, std::string name, std::source_location where,
      bool keep_result) noexcept;
  virtual ~group_child();
  virtual void destroy() noexcept = 0;

  bool keep_result_;

private:
  std::exception_ptr finish(bool failed) noexcept;

  ref_count refs_;
  group_ref_ptr group_;
  task_ref task_;
  const std::string name_;
  const std::source_location where_;
  const std::chrono::steady_clock::time_point start_;
  std::atomic<bool> done_{false};
  std::exception_ptr error_; // written before done_ is published
  spin_lock lock_;            // guards done_event_
  source_state* done_event_ = nullptr;
  std::atomic<source_state*> generation_{nullptr}; // strong reference while followed
};

using group_child_ptr = ref_ptr<group_child>;

// The record of a child returning T: keeps the value for handles (nothing
// for void).
template <typename T>
class group_child_impl final : public group_child
{
public:
  static group_child_impl* create(group_state* g, std::string name, std::source_location where,
      bool keep_result)
  {
    alloc_type alloc;
    group_child_impl* p = alloc.allocate(1);
    return ::new (p) group_child_impl(g, std::move(name), where, keep_result);
  }

  [[no_unique_address]] std::conditional_t<std::is_void_v<T>, std::monostate, std::optional<T>>
      value_;

private:
  using alloc_type = asio::recycling_allocator<group_child_impl>;
  using group_child::group_child;
  void destroy() noexcept override
  {
    this->~group_child_impl();
    alloc_type().deallocate(this, 1);
  }
};

// --- The group -----------------------------------------------------------------

// Locking protocol. One mutex guards the list of live children, the count,
// closed_, the current generation and the join event. It is held for O(1)
// steps, except by snapshot(), which copies the list; it is never held while
// user code runs, nor while a cancellation is delivered.
//
// Generations. The children spawned since the last cancel() follow one
// source, the generation, as its children (reason::parent). cancel() swaps in
// a fresh generation, makes the old one follow it, and cancels the old one
// outside the lock: the source's walk reaches every child with bounded lock
// steps, and children spawned afterwards follow the new generation,
// uncancelled. A later cancel, a shutdown or its escalation on the current
// generation reaches the older ones through that chain.
class group_state
{
public:
  static group_state* create(asio::any_io_executor ex, std::string name, error_handler on_error);

  group_state(const group_state&) = delete;
  group_state& operator=(const group_state&) = delete;

  void add_ref() noexcept { refs_.add(); }
  void release() noexcept
  {
    if (refs_.release())
      delete this;
  }

  const asio::any_io_executor& executor() const noexcept { return ex_; }
  const std::string& name() const noexcept { return name_; }

  // Link @p c and count it; the source it must follow. Null if closed.
  source_ref admit(group_child* c);
  // Unlink @p c if it is still linked; fire the join event if the group
  // is now empty.
  void retire(group_child* c) noexcept { static_cast<void>(retire_if_linked(c)); }
  // The same; false if @p c was not linked (any more).
  bool retire_if_linked(group_child* c) noexcept;

  std::size_t cancel(const cancel_reason& r, asio::cancellation_type_t t);
  void close() noexcept;
  bool closed() const noexcept;
  std::size_t size() const noexcept { return size_.load(std::memory_order_acquire); }
  std::vector<task_info> snapshot() const;

  // Fired (cancelled) when the group is next empty; already fired if it is.
  source_ref join_event();

  // on_error, or the default line on stderr. May throw (on_error's own).
  void report(std::exception_ptr e, const task_info& info) const;

  // @p c will never complete (its context is being destroyed): retire it
  // and tell the registry's on_abandoned.
  void abandoned(group_child* c) noexcept;

  // Leave the context's registry (the owning persistent_task_group is gone).
  void unregister() noexcept;

  // --- Shutdown (see run_group_shutdown) ---
  // Close, start the record if this is the first shutdown, and cancel every
  // child (every generation) with @p r.
  void begin_shutdown(const cancel_reason& r);
  // Cancel what still runs again, terminal, with reason::escalated of the
  // shutdown's reason; the children it reaches are listed in the report.
  void escalate();
  // A child failed: listed in the report if a shutdown is under way.
  void record_failure(const task_info& info, const std::exception_ptr& e);
  // The report so far; with the stragglers when @p incomplete.
  shutdown_report make_report(bool incomplete) const;

private:
  group_state(asio::any_io_executor ex, std::string name, error_handler on_error);
  ~group_state();

  ref_count refs_;
  const asio::any_io_executor ex_;
  const std::string name_;
  const error_handler on_error_;
  registry_core* registry_ = nullptr; // strong reference, set by create()

  mutable std::mutex mutex_;
  bool closed_ = false;
  std::uint64_t next_id_ = 1;
  std::atomic<std::size_t> size_{0};
  group_child* head_ = nullptr;
  group_child* tail_ = nullptr;
  // Each old generation follows the one that replaced it (unchanged), so a
  // request on the current generation reaches every live child.
  source_state* generation_;           // strong reference
  source_state* join_event_ = nullptr; // strong reference, made by a join

  struct shutdown_record
  {
    cancel_reason reason;
    std::chrono::steady_clock::time_point start;
    std::size_t finished = 0;
    std::vector<failed_task> failed;
    // As they were when escalated: a record does not hold the children
    // (each holds the group).
    std::vector<task_info> escalated;
  };
  std::unique_ptr<shutdown_record> shutdown_; // from the first shutdown on
};

// Order a report's stragglers: the oldest first; ties by group, then id.
void sort_oldest_first(std::vector<task_info>& tasks);

// The result of a group's shutdown coroutine.
struct shutdown_outcome
{
  boost::system::error_code ec;
  shutdown_report report;
};

// Shut @p g down: begin, wait for it to empty; after the grace escalate,
// after force_after give up. A cancellation of the coroutine stops the
// waiting (operation_aborted) and leaves the group closed and cancelled.
asio::awaitable<shutdown_outcome> run_group_shutdown(group_ref_ptr g, cancel_reason r,
    shutdown_options opts);

template <typename... Args>
std::exception_ptr group_child::complete(task_state& t, std::exception_ptr& e, const Args&... args)
{
  // A child ends by its cancellation when it was asked to cancel and what
  // it threw is a cancellation; anything else it threw is a failure, even
  // from its cleanup.
  const bool cancelled = t.cancelled();
  const bool failed = e && !(cancelled && is_cancellation_exception(e));
  if (e && cancelled && !failed)
    e = std::make_exception_ptr(cancelled_error(t.first_reason()));
  ended_cancelled_.store(cancelled && (e ? !failed : t.ended_with_held_request()), std::memory_order_release);
  error_ = e;
  if constexpr (sizeof...(Args) == 1)
    if (keep_result_)
      static_cast<group_child_impl<std::decay_t<Args>...>*>(this)->value_.emplace(args...);
  return finish(failed);
}

} // namespace arc::detail

#endif
