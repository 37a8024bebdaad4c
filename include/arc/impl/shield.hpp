// arc: Asio Reasoned Cancellation
#ifndef ARC_IMPL_SHIELD_HPP
#define ARC_IMPL_SHIELD_HPP

#include <arc/detail/bound_handler.hpp>
#include <arc/detail/initiation.hpp>
#include <arc/detail/shield_record.hpp>
#include <arc/detail/work_task.hpp>
#include <arc/detail/task_executor.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

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
  auto st = shield_state<T>::make(std::move(name), where, earliest_deadline(opts.deadline, opts.deadline_at),
      std::move(on_done), inner);
  // Inside a defer-shield the work is still the awaiting child's: its group
  // and name are the task's (the task outlives the wait).
  if (defer && outer)
    st->body()->group_child_ = outer->owner()->group_child_;

  // defer: the task's requests are recorded but held back from its
  // coroutine until the work is done.
  gate_hold hold(defer ? outer : nullptr);
  spawn_work(inner, st->body_ref(),
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

// --- arc::shielded ----------------------------------------------------------------

// The shielded operation's handler: it shows no cancellation slot (the
// token's is not connected), and finishes the shield's record as it
// completes; destroyed uncalled, it reports the record abandoned.
template <typename Handler>
class shielded_handler
{
public:
  using arc_wrapped_handler = Handler;
  using cancellation_slot_type = asio::cancellation_slot;

  template <typename H>
  shielded_handler(H&& h, ref_ptr<shield_state<void>> st)
    : handler_(std::forward<H>(h)), state_(std::move(st))
  {
  }
  shielded_handler(shielded_handler&&) = default;
  shielded_handler& operator=(shielded_handler&&) = delete;
  ~shielded_handler()
  {
    if (auto s = std::move(state_))
      s->finish(nullptr, true);
  }

  cancellation_slot_type get_cancellation_slot() const noexcept { return {}; }

  template <typename First, typename... Args>
  void operator()(First&& first, Args&&... args)
  {
    auto s = std::move(state_);
    const bool forced = s->forced();
    s->finish(nullptr, false);
    s = {};
    if constexpr (std::is_convertible_v<const std::decay_t<First>&, boost::system::error_code>)
      if (forced && first == asio::error::operation_aborted)
      {
        std::move(handler_)(make_error_code(error::shield_deadline_exceeded), std::forward<Args>(args)...);
        return;
      }
    std::move(handler_)(std::forward<First>(first), std::forward<Args>(args)...);
  }

  void operator()()
  {
    if (auto s = std::move(state_))
      s->finish(nullptr, false);
    std::move(handler_)();
  }

  Handler handler_;

private:
  ref_ptr<shield_state<void>> state_;
};

template <typename Initiation>
class initiate_shielded : public initiation_base<Initiation>
{
public:
  template <typename I>
  initiate_shielded(I&& init, std::chrono::steady_clock::time_point deadline, std::source_location where)
    : initiation_base<Initiation>(std::forward<I>(init)), deadline_(deadline), where_(where)
  {
  }

  template <typename Handler, typename... Args>
  void operator()(Handler&& h, Args&&... args) &&
  {
    const asio::any_io_executor ex = emit_executor(this->inner(), h, nullptr);
    if (!ex)
      throw boost::system::system_error(make_error_code(error::no_executor), "arc::shielded");
    auto st = shield_state<void>::make(std::string(), where_, deadline_,
        std::function<void(std::exception_ptr)>(), ex);
    // The operation is bound to the shield's own source: only its deadline
    // cancels it.
    source_state* src = st->body();
    launch_bound<false>(std::move(*this).inner(), src,
        shielded_handler<std::decay_t<Handler>>(std::forward<Handler>(h), std::move(st)),
        std::forward<Args>(args)...);
  }

private:
  std::chrono::steady_clock::time_point deadline_;
  std::source_location where_;
};

struct shield_token_policy
{
  template <typename Signature>
  using signature = Signature;

  template <typename... Signatures, typename Initiation, typename Token>
  static auto wrap(Initiation&& init, const Token& token)
  {
    return initiate_shielded<std::decay_t<Initiation>>(
        std::forward<Initiation>(init), token.deadline_, token.where_);
  }
};

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

namespace arc {

template <typename CompletionToken>
shielded_t<std::decay_t<CompletionToken>> shielded(CompletionToken&& token, std::source_location where)
{
  return {std::chrono::steady_clock::time_point::max(), where, std::forward<CompletionToken>(token)};
}

template <typename CompletionToken>
shielded_t<std::decay_t<CompletionToken>> shielded(std::chrono::steady_clock::duration deadline,
    CompletionToken&& token, std::source_location where)
{
  return {std::chrono::steady_clock::now() + deadline, where, std::forward<CompletionToken>(token)};
}

} // namespace arc

template <typename CompletionToken, typename... Signatures>
struct boost::asio::async_result<arc::shielded_t<CompletionToken>, Signatures...>
  : arc::detail::adapter_async_result<arc::detail::shield_token_policy, CompletionToken, Signatures...>
{
};

#endif
