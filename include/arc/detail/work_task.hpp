// arc: Asio Reasoned Cancellation
#ifndef ARC_DETAIL_WORK_TASK_HPP
#define ARC_DETAIL_WORK_TASK_HPP

#include <arc/detail/intrusive.hpp>
#include <arc/detail/task_state.hpp>
#include <arc/co_spawn.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>

#include <exception>
#include <utility>

namespace arc::detail {

// The completion handler of work run as a task of its own (a shield's, a
// cleanup's): keeps the value in @p State and calls its finish(). Destroyed
// uncalled (the io_context is destroyed with the work pending), it says so.
template <typename State>
class work_completion
{
public:
  explicit work_completion(ref_ptr<State> s) noexcept : s_(std::move(s)) {}
  work_completion(work_completion&&) noexcept = default;
  work_completion& operator=(work_completion&&) = delete;
  ~work_completion()
  {
    if (auto s = std::move(s_))
      s->finish(nullptr, true);
  }

  template <typename... Args>
  void operator()(std::exception_ptr e, Args&&... args)
  {
    auto s = std::move(s_);
    if constexpr (sizeof...(Args) == 1)
      if (!e)
        s->value_.emplace(std::forward<Args>(args)...);
    s->finish(std::move(e), false);
  }

private:
  ref_ptr<State> s_;
};

// Start @p work as @p task on @p ex. An io_context's executor (the usual case)
// is taken out of the any_io_executor first: the task's executor adapter
// then fits in any_io_executor's small buffer, where around an
// any_io_executor it is a shared allocation that every copy of the
// coroutine's executor touches.
template <typename Handler, typename Awaitable>
void spawn_work(const asio::any_io_executor& ex, task_ref task, Handler&& h, Awaitable&& work)
{
  using io_executor = asio::io_context::executor_type;
  if (const io_executor* io = ex.target<io_executor>())
    initiate_co_spawn<io_executor>(*io, std::move(task))(
        std::forward<Handler>(h), std::forward<Awaitable>(work));
  else
    initiate_co_spawn<asio::any_io_executor>(ex, std::move(task))(
        std::forward<Handler>(h), std::forward<Awaitable>(work));
}

// Holds a task's gate (its requests stay pending) for the scope of a
// defer-shield. release() lets go and delivers what is pending; the
// destructor only lets go (the frame is being destroyed, or unwound before
// the work started).
class gate_hold
{
public:
  explicit gate_hold(task_state* t) noexcept : task_(t)
  {
    if (task_)
      task_->gate_.hold();
  }
  gate_hold(const gate_hold&) = delete;
  gate_hold& operator=(const gate_hold&) = delete;
  ~gate_hold()
  {
    if (task_)
      task_->gate_.unhold(false);
  }
  void release()
  {
    if (task_state* t = std::exchange(task_, nullptr))
      t->held_back_ = t->gate_.unhold();
  }

private:
  task_state* task_;
};

} // namespace arc::detail

#endif
