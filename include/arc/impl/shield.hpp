// arc: Asio Reasoned Cancellation
#ifndef ARC_IMPL_SHIELD_HPP
#define ARC_IMPL_SHIELD_HPP

#include <arc/detail/shield_record.hpp>
#include <arc/detail/work_task.hpp>
#include <arc/detail/task_executor.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <type_traits>
#include <utility>

namespace arc::detail {

// A shield's record with the work's value.
template <typename T>
class shield_state final : public shield_record
{
public:
  template <typename... Args>
  static ref_ptr<shield_state> make(Args&&... args)
  {
    return ref_ptr<shield_state>::adopt(new shield_state(std::forward<Args>(args)...));
  }

  // Once done() has fired: the work's value, or what it threw (a forced
  // work's cancellation as shield_deadline_exceeded).
  T take()
  {
    if (error_)
    {
      if (forced() && is_cancellation_exception(error_))
        throw cancelled_error(make_error_code(error::shield_deadline_exceeded), body()->first_reason());
      std::rethrow_exception(error_);
    }
    if constexpr (!std::is_void_v<T>)
      return std::move(*value_);
  }

  std::conditional_t<std::is_void_v<T>, bool, std::optional<T>> value_{};

private:
  shield_state(std::string name, std::source_location where,
      std::chrono::steady_clock::time_point deadline,
      std::function<void(std::exception_ptr)> on_done, const asio::any_io_executor& ex)
    : shield_record(std::move(name), where, deadline, std::move(on_done), ex)
  {
  }
  void destroy_self() noexcept override { delete this; }
};

inline std::chrono::steady_clock::time_point shield_deadline_of(const shield_options& o)
{
  auto at = std::chrono::steady_clock::time_point::max();
  if (o.deadline)
    at = std::chrono::steady_clock::now() + *o.deadline;
  if (o.deadline_at)
    at = std::min(at, *o.deadline_at);
  return at;
}

} // namespace arc::detail

namespace arc::detail {

template <typename T, typename Executor>
boost::asio::awaitable<T, Executor> run_shield(boost::asio::awaitable<T, Executor> work,
    shield_options opts, std::string name, std::function<void(std::exception_ptr)> on_done,
    std::source_location where)
{
  namespace asio = boost::asio;
  const Executor ex = co_await asio::this_coro::executor;
  const asio::any_io_executor inner = unwrap_task_executor(asio::any_io_executor(ex));
  task_state* outer = current_task();
  const bool defer = opts.policy == shield_policy::defer;
  auto st = shield_state<T>::make(std::move(name), where, shield_deadline_of(opts),
      std::move(on_done), inner);
  // Inside a defer-shield the work is still the awaiting child's: its group
  // and name are the task's (the task outlives the wait).
  if (defer && outer)
    st->body()->group_child_ = outer->owner()->group_child_;

  // defer: the task's requests are recorded but held back from its
  // coroutine until the work is done.
  gate_hold hold(defer ? outer : nullptr);
  initiate_co_spawn<asio::any_io_executor>(inner, st->body_ref())(
      work_completion<shield_state<T>>(st), std::move(work));

  if (defer)
    // An empty slot: nothing cancels this wait.
    co_await st->done().async_wait(
        asio::bind_cancellation_slot(asio::cancellation_slot(), asio::use_awaitable_t<Executor>()));
  else if (const cancel_reason r = co_await st->done().async_wait(asio::use_awaitable_t<Executor>()); !r)
  {
    // The awaiting task was cancelled: leave the work to the registry.
    st->leave();
    throw cancelled_error(make_error_code(asio::error::operation_aborted),
        outer ? outer->reason() : cancel_reason());
  }
  hold.release();
  co_return st->take();
}

} // namespace arc::detail

namespace arc {

// Not coroutines themselves: what owns memory (the name's copy, the
// callback) is made here, outside the caller's co_await expression (see
// shield_options), and moved into the coroutine.
template <typename T, typename Executor>
boost::asio::awaitable<T, Executor> shield(boost::asio::awaitable<T, Executor> work,
    shield_options opts, std::source_location where)
{
  return detail::run_shield(std::move(work), opts, std::string(opts.name), {}, where);
}

template <typename T, typename Executor, typename DoneHandler>
  requires std::is_invocable_v<DoneHandler&, std::exception_ptr>
boost::asio::awaitable<T, Executor> shield(boost::asio::awaitable<T, Executor> work,
    shield_options opts, DoneHandler&& on_done, std::source_location where)
{
  return detail::run_shield(std::move(work), opts, std::string(opts.name),
      std::function<void(std::exception_ptr)>(std::forward<DoneHandler>(on_done)), where);
}

} // namespace arc

#endif
