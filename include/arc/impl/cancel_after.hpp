// arc: Asio Reasoned Cancellation
#ifndef ARC_IMPL_CANCEL_AFTER_HPP
#define ARC_IMPL_CANCEL_AFTER_HPP

#include <arc/detail/timeout_op.hpp>

#include <boost/asio/deferred.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <exception>
#include <memory>
#include <optional>

namespace arc {

template <typename Rep, typename Period, typename CompletionToken>
cancel_after_t<std::decay_t<CompletionToken>> cancel_after(
    const std::chrono::duration<Rep, Period>& timeout, CompletionToken&& token,
    std::source_location where)
{
  return {std::chrono::duration_cast<std::chrono::steady_clock::duration>(timeout), {}, where,
      std::forward<CompletionToken>(token)};
}

template <typename Rep, typename Period, typename CompletionToken>
cancel_after_t<std::decay_t<CompletionToken>> cancel_after(
    const std::chrono::duration<Rep, Period>& timeout, cancel_reason reason,
    CompletionToken&& token)
{
  return {std::chrono::duration_cast<std::chrono::steady_clock::duration>(timeout),
      std::move(reason), {}, std::forward<CompletionToken>(token)};
}

template <typename Rep, typename Period, typename CompletionToken>
  requires(!std::is_same_v<std::decay_t<CompletionToken>, boost::asio::cancellation_type_t>)
cancel_after_t<std::decay_t<CompletionToken>> cancel_after(
    const std::chrono::duration<Rep, Period>& timeout, boost::asio::cancellation_type_t type,
    CompletionToken&& token, std::source_location where)
{
  return {std::chrono::duration_cast<std::chrono::steady_clock::duration>(timeout), {}, where,
      std::forward<CompletionToken>(token), type};
}

template <typename Clock, typename WaitTraits, typename Executor, typename Rep, typename Period,
    typename CompletionToken>
cancel_after_timer_t<std::decay_t<CompletionToken>, Clock, WaitTraits, Executor> cancel_after(
    boost::asio::basic_waitable_timer<Clock, WaitTraits, Executor>& timer,
    const std::chrono::duration<Rep, Period>& timeout, CompletionToken&& token,
    std::source_location where)
{
  return {&timer, std::chrono::duration_cast<typename Clock::duration>(timeout), {}, where,
      std::forward<CompletionToken>(token)};
}

template <typename Rep, typename Period>
partial_cancel_after cancel_after(const std::chrono::duration<Rep, Period>& timeout,
    boost::asio::cancellation_type_t type, std::source_location where)
{
  return {std::chrono::duration_cast<std::chrono::steady_clock::duration>(timeout), where, type};
}

template <typename Clock, typename Duration, typename CompletionToken>
cancel_at_t<std::decay_t<CompletionToken>, Clock> cancel_at(
    const std::chrono::time_point<Clock, Duration>& expiry, CompletionToken&& token,
    std::source_location where)
{
  return {std::chrono::time_point_cast<typename Clock::duration>(expiry), {}, where,
      std::forward<CompletionToken>(token)};
}

template <typename Clock, typename Duration, typename CompletionToken>
cancel_at_t<std::decay_t<CompletionToken>, Clock> cancel_at(
    const std::chrono::time_point<Clock, Duration>& expiry, cancel_reason reason,
    CompletionToken&& token)
{
  return {std::chrono::time_point_cast<typename Clock::duration>(expiry), std::move(reason), {},
      std::forward<CompletionToken>(token)};
}

namespace detail {

// The scope with_timeout runs its body in: it follows the calling task with
// reasons unchanged, and the timeout cancels only it. Inside it,
// this_task::source() is still the task's.
template <typename Executor>
task_ref make_timeout_scope(const Executor& ex)
{
  task_state* task = current_task();
  task_ref scope = task_ref::adopt(task_state_impl<asio::any_io_executor>::create(
      cancel_source_options{}.history_limit, unwrap_task_executor(asio::any_io_executor(ex)),
      task ? task->owner() : nullptr));
  if (task)
    task->attach_child(scope.get(), unchanged_policy());
  return scope;
}

// Cancels the scope on expiry and records the reason it used, so that
// with_timeout converts its own timeout and nothing else.
class timeout_trigger
{
public:
  timeout_trigger(task_ref scope, std::shared_ptr<cancel_reason> fired,
      cancel_reason::clock::time_point deadline, cancel_reason::clock::duration after,
      std::source_location where) noexcept
    : scope_(std::move(scope)), fired_(std::move(fired)), deadline_(deadline), after_(after),
      where_(where)
  {
  }

  void operator()(boost::system::error_code ec)
  {
    if (ec)
      return;
    *fired_ = expired_timeout(deadline_, after_, where_);
    scope_.get()->cancel(*fired_, asio::cancellation_type::terminal);
  }

private:
  task_ref scope_;
  std::shared_ptr<cancel_reason> fired_;
  cancel_reason::clock::time_point deadline_;
  cancel_reason::clock::duration after_;
  std::source_location where_;
};

} // namespace detail

namespace detail {

// with_timeout (@p after set: the deadline is counted from the first
// resumption, when the body starts) and with_timeout_at.
template <typename T, typename Executor>
boost::asio::awaitable<T, Executor> with_deadline(std::optional<std::chrono::steady_clock::duration> after,
    std::chrono::steady_clock::time_point at, boost::asio::awaitable<T, Executor> body,
    std::source_location where)
{
  namespace asio = boost::asio;
  const Executor ex = co_await asio::this_coro::executor;
  detail::task_ref scope = detail::make_timeout_scope(ex);
  const auto deadline = after ? std::chrono::steady_clock::now() + *after : at;
  const auto timeout = after ? *after : std::chrono::steady_clock::duration{};
  asio::steady_timer timer(ex, deadline);
  auto fired = std::make_shared<cancel_reason>();
  timer.async_wait(detail::timeout_trigger(scope, fired, deadline, timeout, where));

  using signature = typename detail::spawn_signature<T>::type;
  std::exception_ptr failure;
  std::conditional_t<std::is_void_v<T>, bool, std::optional<T>> result{};
  try
  {
    if constexpr (std::is_void_v<T>)
      co_await asio::async_initiate<const asio::use_awaitable_t<Executor>&, signature>(
          detail::initiate_co_spawn<Executor>(ex, scope), asio::use_awaitable_t<Executor>(),
          std::move(body));
    else
      result.emplace(co_await asio::async_initiate<const asio::use_awaitable_t<Executor>&,
          signature>(detail::initiate_co_spawn<Executor>(ex, scope),
          asio::use_awaitable_t<Executor>(), std::move(body)));
  }
  catch (...)
  {
    failure = std::current_exception();
  }
  timer.cancel();

  if (failure)
  {
    cancel_reason why = scope.get()->reason();
    if (*fired && why == *fired && detail::is_cancellation_exception(failure))
      throw cancelled_error(make_error_code(error::timed_out), std::move(why));
    std::rethrow_exception(failure);
  }
  if constexpr (!std::is_void_v<T>)
    co_return std::move(*result);
}

} // namespace detail

template <typename T, typename Executor>
boost::asio::awaitable<T, Executor> with_timeout(std::chrono::steady_clock::duration timeout,
    boost::asio::awaitable<T, Executor> body, std::source_location where)
{
  return detail::with_deadline(std::optional(timeout), {}, std::move(body), where);
}

template <typename T, typename Executor>
boost::asio::awaitable<T, Executor> with_timeout_at(std::chrono::steady_clock::time_point deadline,
    boost::asio::awaitable<T, Executor> body, std::source_location where)
{
  return detail::with_deadline<T, Executor>(std::nullopt, deadline, std::move(body), where);
}

} // namespace arc

template <typename CompletionToken, typename Clock, typename WaitTraits, typename... Signatures>
struct boost::asio::async_result<arc::cancel_after_t<CompletionToken, Clock, WaitTraits>,
    Signatures...>
  : arc::detail::adapter_async_result<
        arc::detail::timeout_policy<Clock, WaitTraits, typename Clock::duration>, CompletionToken,
        Signatures...>
{
};

template <typename CompletionToken, typename Clock, typename WaitTraits, typename Executor,
    typename... Signatures>
struct boost::asio::async_result<
    arc::cancel_after_timer_t<CompletionToken, Clock, WaitTraits, Executor>, Signatures...>
  : arc::detail::adapter_async_result<
        arc::detail::timeout_policy<Clock, WaitTraits, typename Clock::duration,
            boost::asio::basic_waitable_timer<Clock, WaitTraits, Executor>>,
        CompletionToken, Signatures...>
{
};

namespace arc::detail {

// The default completion token of an initiation's executor; deferred where
// it names none, as in Asio ≥ 1.84 (on Boost 1.81 only executors such as
// use_awaitable_t::executor_with_default name one).
template <typename Initiation>
struct initiation_default_token
{
  using type = boost::asio::deferred_t;
};

template <typename Initiation>
  requires requires(const Initiation& i) { i.get_executor(); }
  && (!std::is_void_v<boost::asio::default_completion_token_t<
          std::decay_t<decltype(std::declval<const Initiation&>().get_executor())>>>)
struct initiation_default_token<Initiation>
{
  using type = boost::asio::default_completion_token_t<
      std::decay_t<decltype(std::declval<const Initiation&>().get_executor())>>;
};

} // namespace arc::detail

// The partial form as a token: adapt the default completion token of the
// operation's executor.
template <typename... Signatures>
struct boost::asio::async_result<arc::partial_cancel_after, Signatures...>
{
  template <typename Initiation, typename RawToken, typename... Args>
  static auto initiate(Initiation&& init, RawToken&& token, Args&&... args)
  {
    using default_token =
        typename arc::detail::initiation_default_token<std::decay_t<Initiation>>::type;
    auto adapted = token(default_token());
    return boost::asio::async_initiate<arc::cancel_after_t<default_token>, Signatures...>(
        std::forward<Initiation>(init), adapted, std::forward<Args>(args)...);
  }
};

template <typename CompletionToken, typename Clock, typename WaitTraits, typename... Signatures>
struct boost::asio::async_result<arc::cancel_at_t<CompletionToken, Clock, WaitTraits>,
    Signatures...>
  : arc::detail::adapter_async_result<
        arc::detail::timeout_policy<Clock, WaitTraits, typename Clock::time_point>,
        CompletionToken, Signatures...>
{
};

#endif
