// arc: Asio Reasoned Cancellation
#ifndef ARC_DETAIL_TASK_STATE_HPP
#define ARC_DETAIL_TASK_STATE_HPP

#include <arc/detail/op_node.hpp>
#include <arc/detail/source_state.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <atomic>
#include <cstdint>
#include <exception>
#include <utility>

namespace arc::detail {

class task_state;

// This thread's tasks: the one whose code runs here now, and the one this
// thread holds (see task_state). Set by the task executor. Trivial, so the
// thread_local needs no guard; an inline variable, so there is one per
// program.
struct thread_tasks
{
  task_state* current = nullptr;
  task_state* held = nullptr;
};

inline thread_local thread_tasks this_thread_tasks;

inline task_state*& current_task() noexcept { return this_thread_tasks.current; }
inline task_state*& held_task() noexcept { return this_thread_tasks.held; }

// A coroutine started by arc::co_spawn: its source, and the serialisation of
// its emits with its resumptions.
//
// Serialisation argument. Every resumption of the coroutine runs through
// the task executor, whose invoker holds the task exclusively while it runs
// (state_); so does every delivery of an emit to an operation the coroutine
// awaits (its nodes are routed here). Holding is a flag, not a lock: a
// thread that finds the task held never waits for it. An emit queues its
// node and returns, and the holder delivers the queue when it lets go, on
// its own thread, which runs the task's executor. A resumption that finds
// the task held is re-posted. So on any executor (an io_context run by many
// threads, a thread_pool, a strand) an emit never runs concurrently with
// the coroutine, and never inside it: a task cancelling itself from its body
// reaches its operations once the body has suspended.
class task_state final : public source_state, public emit_serializer
{
public:
  static task_state* create(std::size_t history_limit, asio::any_io_executor&& ex,
      task_state* owner);

  void add_ref() noexcept override { source_state::add_ref(); }
  void release() noexcept override { source_state::release(); }

  // The task this state is a scope of (arc::with_timeout's body), or itself.
  task_state* owner() noexcept { return owner_ ? owner_ : this; }

  // emit_serializer
  void submit(op_node* n, bool never_inline) override;

  // Setting a bit that is already set changes nothing: one fetch_or (a
  // single bit test-and-set on x86) acquires or finds the task held.
  bool try_acquire() noexcept
  {
    return !(state_.fetch_or(held_bit, std::memory_order_acquire) & held_bit);
  }
  // Deliver what was queued while held, then let go; repeat if more was
  // queued meanwhile and the task is free.
  // Exceptions thrown by cancellation handlers are collected in @p error
  // (the first one); every queued node is still delivered.
  void release_and_deliver(std::exception_ptr& error) noexcept;

  // Let go of the task; deliver first what was queued meanwhile, if anything.
  void let_go(std::exception_ptr& error) noexcept
  {
    std::uintptr_t s = held_bit;
    if (!state_.compare_exchange_strong(s, 0, std::memory_order_release,
            std::memory_order_relaxed)) [[unlikely]]
      release_and_deliver(error);
  }

  // The node binding the coroutine to the task. Its gate (op_node::open)
  // opens when the task executor first runs the coroutine: Boost 1.81's
  // co_spawn entry point co_awaits outside its try block before the body, so
  // a cancellation state set then would escape run().
  op_node* gate_node_ = nullptr;
  std::atomic<bool> started_{false};
  // Set when the task has completed: an executor captured inside it no
  // longer makes its code part of the task.
  std::atomic<bool> finished_{false};

  // Compares an executor with this task's own, without knowing its type:
  // set by arc::co_spawn.
  bool (*is_own_executor_)(const asio::any_io_executor&, const task_state*) noexcept = nullptr;

private:
  task_state(std::size_t history_limit, asio::any_io_executor&& ex, task_state* owner);
  ~task_state() override;
  void destroy_self() noexcept override;

  // One word: whether the task is held (bit 0), and the head of the queue
  // of nodes with an emit to deliver (the rest). Acquiring and letting go of
  // an idle task are one compare-exchange each.
  static constexpr std::uintptr_t held_bit = 1;
  std::atomic<std::uintptr_t> state_{0};
  task_state* owner_; // strong reference, or null
};

// Marks this thread as holding @p t for a scope (see task_state).
class task_hold
{
public:
  explicit task_hold(task_state* t) noexcept : prev_(std::exchange(held_task(), t)) {}
  task_hold(const task_hold&) = delete;
  task_hold& operator=(const task_hold&) = delete;
  ~task_hold() { held_task() = prev_; }

private:
  task_state* prev_;
};

// Sets the current task for a scope and restores the previous one.
class task_scope
{
public:
  explicit task_scope(task_state* task) noexcept : prev_(std::exchange(current_task(), task)) {}
  task_scope(const task_scope&) = delete;
  task_scope& operator=(const task_scope&) = delete;
  ~task_scope() { current_task() = prev_; }

private:
  task_state* prev_;
};

using task_ref = ref_ptr<task_state>;

} // namespace arc::detail

#endif
