// arc: Asio Reasoned Cancellation
#ifndef ARC_DETAIL_TASK_STATE_HPP
#define ARC_DETAIL_TASK_STATE_HPP

#include <arc/detail/op_node.hpp>
#include <arc/detail/source_state.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/recycling_allocator.hpp>

#include <atomic>
#include <cstdint>
#include <exception>
#include <type_traits>
#include <utility>

namespace arc::detail {

class task_state;
class group_child; // layer 5: a task's record in its persistent_task_group

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
// The node that binds a task's coroutine to the task (arc::co_spawn's own
// bind_cancel). It lives inside the task, so a task is one allocation: its
// source, its serialiser and this node. While bound (attach() until its last
// reference goes) it holds a reference on the task, as any node holds its
// source. Its gate (op_node::open) opens when the task executor first runs the
// coroutine: Boost 1.81's co_spawn entry point co_awaits outside its try block
// before the body, so a cancellation state set then would escape run().
class task_gate final : public op_node
{
public:
  task_gate() noexcept : op_node(nullptr) {}

  // Bind to @p task, which contains this node; then link into it.
  void attach(task_state* task) noexcept;

private:
  void schedule(bool never_inline) override;
  void destroy() noexcept override { drop_source(); }
};

class task_state : public emit_serializer
{
public:
  // The task this state is a scope of (arc::with_timeout's body), or itself.
  task_state* owner() noexcept { return owner_ ? owner_ : this; }

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

  // The posted half of submit(): acquire the task if free and deliver its
  // queue; if held, the holder delivers it when it lets go.
  void deliver_posted();

  // The posted delivery was destroyed without running (its io_context is
  // being destroyed): let go of the queued nodes without delivering, or the
  // queue's references (queue -> gate -> task) would keep the task alive.
  void drop_queued() noexcept;

  task_gate gate_;
  std::atomic<bool> started_{false};
  // Set when the task has completed: an executor captured inside it no
  // longer makes its code part of the task.
  std::atomic<bool> finished_{false};
  // A shield or cleanup let go of the gate with a request pending. Touched
  // only by the task's own code.
  bool held_back_ = false;

  // Compares an executor with this task's own, without knowing its type:
  // set by arc::co_spawn.
  bool (*is_own_executor_)(const asio::any_io_executor&, const task_state*) noexcept = nullptr;

  // The task's record in its group, if it is a group's child: set before the
  // coroutine first runs, read only by the task itself (this_task::group(),
  // this_task::name()). The record outlives the coroutine.
  group_child* group_child_ = nullptr;

  // True if the task's last shield or cleanup let go of the gate with a
  // request pending and the gate has not delivered since: the task ended with
  // its cancellation held back, not ignored (task_handle::ended_cancelled).
  bool ended_with_held_request() noexcept
  {
    return held_back_ && !gate_.delivered_since_hold();
  }

protected:
  task_state(std::size_t history_limit, task_state* owner) noexcept;
  ~task_state() override;

  // The common part of submit() (emit_serializer): deliver @p n now if
  // @p may_run_here and the task is free, else queue it. Returns true if the
  // caller must post deliver_posted() to the task's executor.
  bool submit_or_queue(op_node* n, bool may_run_here);

private:
  // One word: whether the task is held (bit 0), and the head of the queue
  // of nodes with an emit to deliver (the rest). Acquiring and letting go of
  // an idle task are one compare-exchange each.
  static constexpr std::uintptr_t held_bit = 1;
  std::atomic<std::uintptr_t> state_{0};
  task_state* owner_; // strong reference, or null
};

inline void task_gate::attach(task_state* task) noexcept
{
  set_source(task);
}

inline void task_gate::schedule(bool never_inline)
{
  static_cast<task_state*>(source())->submit(this, never_inline);
}

// submit()'s posted half. Destroyed without running (the io_context is
// destroyed first), it drops the task's queue.
struct posted_delivery
{
  ref_ptr<task_state> self;
  bool ran = false;

  posted_delivery(ref_ptr<task_state> t) noexcept : self(std::move(t)) {}
  posted_delivery(posted_delivery&& o) noexcept : self(std::move(o.self)), ran(o.ran) {}
  posted_delivery& operator=(posted_delivery&&) = delete;
  ~posted_delivery()
  {
    if (self && !ran)
      self->drop_queued();
  }
  void operator()()
  {
    ran = true;
    self->deliver_posted();
  }
};

// A task on an executor of type Executor (the one under its task executor),
// kept with its type: posting to it and asking whether this thread runs it
// cost what they cost on Executor, and a task over an io_context holds one
// word of executor, not an any_io_executor.
template <typename Executor>
class task_state_impl final : public task_state
{
public:
  static task_state_impl* create(std::size_t history_limit, Executor ex, task_state* owner)
  {
    alloc_type alloc;
    task_state_impl* p = alloc.allocate(1);
    try
    {
      return ::new (p) task_state_impl(history_limit, std::move(ex), owner);
    }
    catch (...)
    {
      alloc.deallocate(p, 1);
      throw;
    }
  }

  bool has_executor() const noexcept override
  {
    if constexpr (std::is_same_v<Executor, asio::any_io_executor>)
      return static_cast<bool>(ex_);
    else
      return true;
  }
  asio::any_io_executor executor() const override { return ex_; }

  void submit(op_node* n, bool never_inline) override
  {
    const bool may_run_here = !never_inline && held_task() != this && running_here(ex_);
    if (submit_or_queue(n, may_run_here))
      asio::post(ex_, posted_delivery{ref_ptr<task_state>(this)});
  }

private:
  using alloc_type = asio::recycling_allocator<task_state_impl>;

  task_state_impl(std::size_t history_limit, Executor&& ex, task_state* owner)
    : task_state(history_limit, owner), ex_(std::move(ex))
  {
  }
  ~task_state_impl() override = default;

  void destroy_self() noexcept override
  {
    this->~task_state_impl();
    alloc_type().deallocate(this, 1);
  }

  Executor ex_;
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
