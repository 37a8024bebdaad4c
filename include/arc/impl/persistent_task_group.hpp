// arc: Asio Reasoned Cancellation
#ifndef ARC_IMPL_PERSISTENT_TASK_GROUP_HPP
#define ARC_IMPL_PERSISTENT_TASK_GROUP_HPP

#include <arc/detail/source_wait.hpp>
#include <arc/error.hpp>

#include <boost/asio/append.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/system/system_error.hpp>

namespace arc::detail {

// The handler a group gives arc::co_spawn for a child: the group's books are
// kept by arc_task_complete, on the child's executor, before the handler
// it wraps is delivered wherever it runs.
template <typename Handler>
class group_completion
{
public:
  using arc_wrapped_handler = Handler;

  template <typename H>
  group_completion(H&& h, group_child_ptr c) : handler_(std::forward<H>(h)), child_(std::move(c))
  {
  }

  group_completion(group_completion&&) = default;
  group_completion& operator=(group_completion&&) = delete;

  ~group_completion()
  {
    // Destroyed without completing: the child's io_context is being destroyed.
    if (child_ && !completed_)
      child_->abandon();
  }

  template <typename... Args>
  std::exception_ptr arc_task_complete(task_state& t, std::exception_ptr& e, const Args&... args)
  {
    completed_ = true;
    return child_->complete(t, e, args...);
  }

  template <typename... Args>
  void operator()(std::exception_ptr e, Args&&... args)
  {
    child_ = group_child_ptr();
    std::move(handler_)(std::move(e), std::forward<Args>(args)...);
  }

  Handler handler_;

private:
  group_child_ptr child_;
  bool completed_ = false;
};

// The handler of a spawn without a token: the result stays in the record,
// for the handles.
struct group_detached
{
  template <typename... Args>
  void operator()(Args&&...) const noexcept
  {
  }
};

// Make @p child's task, admit the child to @p g and spawn @p s in it, with
// @p h as its handler. False if the group is closed: then nothing was
// spawned, and @p h and @p s are untouched.
template <typename Executor, typename Handler, typename Spawnable>
bool launch_child(const Executor& ex, group_state* g, group_child* child, Handler&& h,
    Spawnable&& s)
{
  using handler_type = group_completion<std::decay_t<Handler>>;
  task_ref task = task_ref::adopt(task_state_impl<Executor>::create(
      cancel_source_options{}.history_limit, Executor(ex), nullptr));
  task->group_child_ = child;
  child->set_task(task); // before the child is listed: snapshot() reads it
  source_ref generation = g->admit(child);
  if (!generation)
    return false;
  try
  {
    child->follow(generation.get());
    initiate_co_spawn<Executor>(ex, std::move(task))(
        handler_type(std::forward<Handler>(h), group_child_ptr(child)),
        std::forward<Spawnable>(s));
  }
  catch (...)
  {
    g->retire(child);
    throw;
  }
  return true;
}

// Spawn on @p ex (the spawn's own executor, else the group's), with its type
// when it is an io_context's or a strand of one: a task executor over an
// any_io_executor would not fit in an any_io_executor's small buffer, and
// every copy would share a heap target.
template <typename Handler, typename Spawnable>
bool launch_on_group(group_state* g, group_child* child, const asio::any_io_executor& ex,
    Handler&& h, Spawnable&& s)
{
  using io_executor = asio::io_context::executor_type;
  const asio::any_io_executor& on = ex ? ex : g->executor();
  if (const auto* io = on.target<io_executor>())
    return launch_child(*io, g, child, std::forward<Handler>(h), std::forward<Spawnable>(s));
  if (const auto* strand = on.target<asio::strand<io_executor>>())
    return launch_child(*strand, g, child, std::forward<Handler>(h), std::forward<Spawnable>(s));
  return launch_child(on, g, child, std::forward<Handler>(h), std::forward<Spawnable>(s));
}

template <typename T>
class initiate_group_spawn
{
public:
  using executor_type = asio::any_io_executor;

  initiate_group_spawn(group_state* g, spawn_options opts, std::source_location where) noexcept
    : group_(g), name_(std::move(opts.name)), executor_(std::move(opts.executor)), where_(where)
  {
  }

  executor_type get_executor() const noexcept { return group_->executor(); }

  template <typename Handler, typename Spawnable>
  void operator()(Handler&& h, Spawnable&& s) const
  {
    group_child_ptr child = group_child_ptr::adopt(
        group_child_impl<T>::create(group_.get(), name_, where_, false));
    if (launch_on_group(group_.get(), child.get(), executor_, std::forward<Handler>(h),
            std::forward<Spawnable>(s)))
      return;
    // Closed: the awaitable goes with this frame, never run.
    auto e = std::make_exception_ptr(boost::system::system_error(
        make_error_code(error::group_closed), "arc::persistent_task_group::spawn"));
    if constexpr (std::is_void_v<T>)
      asio::post(group_->executor(), asio::append(std::forward<Handler>(h), e));
    else
      asio::post(group_->executor(), asio::append(std::forward<Handler>(h), e, T()));
  }

private:
  group_ref_ptr group_;
  std::string name_;
  asio::any_io_executor executor_;
  std::source_location where_;
};

// task_handle::async_wait's handler: the done event's reason says whether
// the child completed (any reason) or the wait was cancelled (none).
template <typename Handler, typename T>
class handle_wait_completion
{
public:
  using arc_wrapped_handler = Handler;

  template <typename H>
  handle_wait_completion(H&& h, group_child_ptr c)
    : handler_(std::forward<H>(h)), child_(std::move(c))
  {
  }

  void operator()(const cancel_reason& r)
  {
    group_child_ptr c = std::move(child_);
    if (!r)
    {
      auto e = std::make_exception_ptr(boost::system::system_error(
          asio::error::operation_aborted, "arc::task_handle::async_wait"));
      if constexpr (std::is_void_v<T>)
        std::move(handler_)(std::move(e));
      else
        std::move(handler_)(std::move(e), T());
      return;
    }
    if constexpr (std::is_void_v<T>)
      std::move(handler_)(c->error());
    else
    {
      auto* impl = static_cast<group_child_impl<T>*>(c.get());
      std::move(handler_)(c->error(), impl->value_ ? T(*impl->value_) : T());
    }
  }

  Handler handler_;

private:
  group_child_ptr child_;
};

template <typename T>
class initiate_handle_wait
{
public:
  using executor_type = asio::any_io_executor;

  explicit initiate_handle_wait(group_child_ptr c) noexcept : child_(std::move(c)) {}

  // The group's: where the wait completes for a handler without an executor
  // (and what use_promise needs).
  executor_type get_executor() const noexcept
  {
    return child_ ? child_->group()->executor() : executor_type();
  }

  template <typename Handler>
  void operator()(Handler&& h) const
  {
    if (!child_)
      throw boost::system::system_error(
          make_error_code(boost::system::errc::invalid_argument), "arc::task_handle::async_wait");
    source_ref ev = child_->done_event();
    initiate_source_wait(ev.get())(
        handle_wait_completion<std::decay_t<Handler>, T>(std::forward<Handler>(h), child_));
  }

private:
  group_child_ptr child_;
};

// async_join's handler: a fired join event completes it; a cancelled wait
// says operation_aborted.
template <typename Handler>
class join_completion
{
public:
  using arc_wrapped_handler = Handler;

  template <typename H>
  explicit join_completion(H&& h) : handler_(std::forward<H>(h))
  {
  }

  void operator()(const cancel_reason& r)
  {
    std::move(handler_)(r ? boost::system::error_code()
                          : boost::system::error_code(asio::error::operation_aborted));
  }

  Handler handler_;
};

class initiate_group_join
{
public:
  using executor_type = asio::any_io_executor;

  explicit initiate_group_join(group_state* g) noexcept : group_(g) {}

  executor_type get_executor() const noexcept { return group_->executor(); }

  template <typename Handler>
  void operator()(Handler&& h) const
  {
    source_ref ev = group_->join_event();
    initiate_source_wait(ev.get())(join_completion<std::decay_t<Handler>>(std::forward<Handler>(h)));
  }

private:
  group_ref_ptr group_;
};

// async_shutdown's handler: the shutdown coroutine's outcome, as
// (error_code, report).
template <typename Handler>
class shutdown_completion
{
public:
  using arc_wrapped_handler = Handler;

  template <typename H>
  explicit shutdown_completion(H&& h) : handler_(std::forward<H>(h))
  {
  }

  void operator()(std::exception_ptr e, shutdown_outcome out)
  {
    // The coroutine ends by co_return; an exception means it never ran its
    // body (cancelled before it started).
    if (e)
      out.ec = asio::error::operation_aborted;
    std::move(handler_)(out.ec, std::move(out.report));
  }

  Handler handler_;
};

class initiate_group_shutdown
{
public:
  using executor_type = asio::any_io_executor;

  initiate_group_shutdown(group_state* g, cancel_reason r, shutdown_options o) noexcept
    : group_(g), reason_(std::move(r)), opts_(o)
  {
  }

  executor_type get_executor() const noexcept { return group_->executor(); }

  template <typename Handler>
  void operator()(Handler&& h) const
  {
    // Closed at once: a spawn after async_shutdown has returned is refused.
    // The cancellations are delivered from the coroutine, not from here.
    group_->close();
    arc::co_spawn(group_->executor(), run_group_shutdown(group_, reason_, opts_),
        shutdown_completion<std::decay_t<Handler>>(std::forward<Handler>(h)));
  }

private:
  group_ref_ptr group_;
  cancel_reason reason_;
  shutdown_options opts_;
};

} // namespace arc::detail

namespace arc {

template <typename CompletionToken>
auto group_ref::async_shutdown(cancel_reason reason, shutdown_options opts,
    CompletionToken&& token) const
{
  return boost::asio::async_initiate<CompletionToken,
      void(boost::system::error_code, shutdown_report)>(
      detail::initiate_group_shutdown(state_.get(), std::move(reason), opts), token);
}

template <typename Spawnable>
  requires detail::group_spawnable<Spawnable>
task_handle<detail::spawn_value_t<Spawnable>> group_ref::spawn(Spawnable&& s, spawn_options opts,
    std::source_location where) const
{
  using T = detail::spawn_value_t<Spawnable>;
  detail::group_child_ptr child = detail::group_child_ptr::adopt(
      detail::group_child_impl<T>::create(state_.get(), std::move(opts.name), where, true));
  if (!detail::launch_on_group(state_.get(), child.get(), opts.executor, detail::group_detached(),
          std::forward<Spawnable>(s)))
    throw boost::system::system_error(make_error_code(error::group_closed),
        "arc::persistent_task_group::spawn");
  return task_handle<T>(std::move(child));
}

template <typename Spawnable, typename CompletionToken>
  requires detail::group_spawnable<Spawnable>
    && detail::group_token_for<CompletionToken, Spawnable>
auto group_ref::spawn(Spawnable&& s, CompletionToken&& token, std::source_location where) const
{
  return spawn(std::forward<Spawnable>(s), spawn_options{},
      std::forward<CompletionToken>(token), where);
}

template <typename Spawnable, typename CompletionToken>
  requires detail::group_spawnable<Spawnable>
    && detail::group_token_for<CompletionToken, Spawnable>
auto group_ref::spawn(Spawnable&& s, spawn_options opts, CompletionToken&& token,
    std::source_location where) const
{
  using T = detail::spawn_value_t<Spawnable>;
  return boost::asio::async_initiate<CompletionToken, detail::spawn_signature_t<T>>(
      detail::initiate_group_spawn<T>(state_.get(), std::move(opts), where), token,
      std::forward<Spawnable>(s));
}

template <typename CompletionToken>
auto group_ref::async_join(CompletionToken&& token) const
{
  return boost::asio::async_initiate<CompletionToken, void(boost::system::error_code)>(
      detail::initiate_group_join(state_.get()), token);
}

template <typename T>
bool task_handle<T>::cancel(cancel_reason reason, boost::asio::cancellation_type_t type) const
{
  if (!child_ || child_->done())
    return false;
  return child_->task()->cancel(std::move(reason), type);
}

template <typename T>
bool task_handle<T>::done() const noexcept
{
  return child_ && child_->done();
}

template <typename T>
bool task_handle<T>::cancelled() const noexcept
{
  return child_ && child_->task()->cancelled();
}

template <typename T>
std::size_t task_handle<T>::uncancel() const
{
  if (!child_)
    throw boost::system::system_error(
        make_error_code(boost::system::errc::invalid_argument), "arc::task_handle::uncancel");
  if (child_->done())
    throw boost::system::system_error(make_error_code(error::already_finished), "arc::task_handle::uncancel");
  detail::task_state* t = child_->task();
  const std::size_t left = t->uncancel();
  if (left == 0)
    t->gate_.withdraw();
  return left;
}

template <typename T>
bool task_handle<T>::ended_cancelled() const noexcept
{
  return child_ && child_->done() && child_->ended_cancelled_.load(std::memory_order_acquire);
}

template <typename T>
task_info task_handle<T>::info() const
{
  return child_ ? child_->info() : task_info();
}

template <typename T>
boost::asio::any_io_executor task_handle<T>::get_executor() const noexcept
{
  return child_ ? child_->group()->executor() : boost::asio::any_io_executor();
}

template <typename T>
template <typename CompletionToken>
auto task_handle<T>::async_wait(CompletionToken&& token) const
{
  return boost::asio::async_initiate<CompletionToken, detail::spawn_signature_t<T>>(
      detail::initiate_handle_wait<T>(child_), token);
}

} // namespace arc

#endif
