// arc: Asio Reasoned Cancellation
#ifndef ARC_DETAIL_TASK_EXECUTOR_HPP
#define ARC_DETAIL_TASK_EXECUTOR_HPP

#include <arc/detail/task_state.hpp>

#include <boost/asio/execution/blocking.hpp>
#include <boost/asio/execution/executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/query.hpp>
#include <boost/asio/require.hpp>

#include <exception>
#include <type_traits>
#include <utility>

namespace arc::detail {

// Runs a function of the task's: with the task as current, holding the task
// (see task_state). The task's first function (the co_spawn entry point's
// resumption, before the body starts) also opens the gate of the node that
// binds the coroutine.
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
    task_state* t = task_.get();
    if (t->finished_.load(std::memory_order_acquire))
    {
      // The task has ended: an executor captured inside it runs plain code.
      task_scope none(nullptr);
      std::move(f_)();
      return;
    }
    if (held_task() == t)
    {
      // Dispatched from inside the task's own code on this thread.
      task_scope scope(t);
      std::move(f_)();
      return;
    }
    if (!t->try_acquire())
    {
      // An emit is being delivered to the task on another thread: come back.
      asio::post(t->executor(), std::move(*this));
      return;
    }
    task_hold hold(t);
    {
      task_scope scope(t);
      if (first_)
        t->gate_.open();
      try
      {
        std::move(f_)();
      }
      catch (...)
      {
        std::exception_ptr ignored; // the handler's own exception wins
        t->let_go(ignored);
        throw;
      }
    }
    std::exception_ptr error;
    t->let_go(error);
    if (error) [[unlikely]]
      std::rethrow_exception(error);
  }

private:
  Function f_;
  task_ref task_;
  bool first_;
};

// An executor adapter that carries a task: every function it executes runs
// with the task as current (so this_task works inside the coroutine without
// any change to Asio's awaitable machinery) and serialised with the task's
// emits. Properties are forwarded to the wrapped executor. Work submitted to
// a foreign executor does not carry the task; it comes back when the
// coroutine resumes on this executor.
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
    task_state* t = task_.get();
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

  // True on a thread that holds the task: code there is the task's own.
  bool running_in_this_thread() const noexcept { return held_task() == task_.get(); }

  const Executor& inner() const noexcept { return inner_; }
  task_state* task() const noexcept { return task_.get(); }

  // For task_state::is_own_executor_.
  static bool holds(const asio::any_io_executor& ex, const task_state* t) noexcept
  {
    const auto* te = ex.template target<task_executor>();
    return te && te->task() == t;
  }

private:
  Executor inner_;
  task_ref task_;
};

// @p ex, or, if it is the current task's own executor, the executor under it.
inline asio::any_io_executor unwrap_task_executor(asio::any_io_executor ex)
{
  if (task_state* t = current_task(); t && t->is_own_executor_ && t->is_own_executor_(ex, t))
    return t->executor();
  return ex;
}

// The task an operation's emits must be serialised with: the current task,
// if @p ex is that task's executor.
template <typename Executor>
task_state* serializer_for(const Executor& ex) noexcept
{
  task_state* t = current_task();
  if (!t)
    return nullptr;
  if constexpr (std::is_same_v<Executor, asio::any_io_executor>)
    return t->is_own_executor_ && t->is_own_executor_(ex, t) ? t : nullptr;
  else if constexpr (requires { ex.task(); })
    return ex.task() == t ? t : nullptr;
  else
    return nullptr;
}

} // namespace arc::detail

#endif
