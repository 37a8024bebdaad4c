// arc: Asio Reasoned Cancellation
#ifndef ARC_DETAIL_TASK_EXECUTOR_HPP
#define ARC_DETAIL_TASK_EXECUTOR_HPP

#include <arc/detail/source_state.hpp>

#include <boost/asio/execution/blocking.hpp>
#include <boost/asio/execution/executor.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/query.hpp>
#include <boost/asio/require.hpp>

#include <type_traits>
#include <utility>

namespace arc::detail {

// Sets the current task for a scope and restores the previous one.
class task_scope
{
public:
  explicit task_scope(source_state* task) noexcept
    : slot_(current_task()), saved_(std::exchange(slot_, task))
  {
  }
  task_scope(const task_scope&) = delete;
  task_scope& operator=(const task_scope&) = delete;
  ~task_scope() { slot_ = saved_; }

private:
  source_state*& slot_;
  source_state* saved_;
};

// A strong reference to a task's source state.
class task_ref
{
public:
  task_ref() noexcept = default;
  explicit task_ref(source_state* s) noexcept : s_(s)
  {
    if (s_)
      s_->add_ref();
  }
  task_ref(const task_ref& o) noexcept : task_ref(o.s_) {}
  // Take over a reference the caller already owns.
  static task_ref adopt(source_state* s) noexcept
  {
    task_ref r;
    r.s_ = s;
    return r;
  }
  task_ref(task_ref&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  task_ref& operator=(task_ref o) noexcept
  {
    std::swap(s_, o.s_);
    return *this;
  }
  ~task_ref()
  {
    if (s_)
      s_->release();
  }
  source_state* get() const noexcept { return s_; }

private:
  source_state* s_ = nullptr;
};

// Runs a function with the task set as current. The task's first function
// (the co_spawn entry point's resumption, before the body starts) also opens
// the gate of the node binding the coroutine (op_node::make_gated).
template <typename Function>
class task_invoker
{
public:
  task_invoker(Function f, task_ref task, bool first = false)
    : f_(std::move(f)), task_(std::move(task)), first_(first)
  {
  }

  void operator()()
  {
    task_scope scope(task_.get());
    if (first_)
      if (op_node* gate = task_.get()->gate_node_)
        gate->open_gate();
    std::move(f_)();
  }

private:
  Function f_;
  task_ref task_;
  bool first_;
};

// An executor adapter that carries a task: every function it executes runs
// with the task as current, so this_task works inside the coroutine without
// any change to Asio's awaitable machinery. Properties are forwarded to the
// wrapped executor. Work submitted to a foreign executor does not carry the
// task; it comes back when the coroutine resumes on this executor.
template <typename Executor>
class task_executor
{
public:
  task_executor(Executor ex, task_ref task) noexcept
    : inner_(std::move(ex)), task_(std::move(task))
  {
  }

  template <typename Function>
  void execute(Function&& f) const
  {
    using invoker = task_invoker<std::decay_t<Function>>;
    source_state* t = task_.get();
    if (!t->started_.load(std::memory_order_relaxed)
        && !t->started_.exchange(true, std::memory_order_relaxed))
    {
      // The first run is always queued, never inline: so the gate is open
      // before the body starts, wherever co_spawn was called from.
      if constexpr (asio::can_require<const Executor&, asio::execution::blocking_t::never_t>::value)
        asio::require(inner_, asio::execution::blocking.never)
            .execute(invoker(std::forward<Function>(f), task_, true));
      else
        inner_.execute(invoker(std::forward<Function>(f), task_, true));
      return;
    }
    inner_.execute(invoker(std::forward<Function>(f), task_));
  }

  template <typename Property>
    requires asio::can_query<const Executor&, const Property&>::value
  decltype(auto) query(const Property& p) const
      noexcept(asio::is_nothrow_query<const Executor&, const Property&>::value)
  {
    return asio::query(inner_, p);
  }

  template <typename Property>
    requires asio::can_require<const Executor&, const Property&>::value
  auto require(const Property& p) const
  {
    using inner_type = std::decay_t<decltype(asio::require(inner_, p))>;
    return task_executor<inner_type>(asio::require(inner_, p), task_);
  }

  template <typename Property>
    requires asio::can_prefer<const Executor&, const Property&>::value
  auto prefer(const Property& p) const
  {
    using inner_type = std::decay_t<decltype(asio::prefer(inner_, p))>;
    return task_executor<inner_type>(asio::prefer(inner_, p), task_);
  }

  friend bool operator==(const task_executor& a, const task_executor& b) noexcept
  {
    return a.inner_ == b.inner_ && a.task_.get() == b.task_.get();
  }

  // Lets arc's emits skip dispatch when already on this executor.
  template <typename E = Executor>
    requires requires(const E& e) { e.running_in_this_thread(); }
  bool running_in_this_thread() const noexcept
  {
    return inner_.running_in_this_thread();
  }

  const Executor& inner() const noexcept { return inner_; }
  source_state* task() const noexcept { return task_.get(); }

private:
  Executor inner_;
  task_ref task_;
};

} // namespace arc::detail

#endif
