// arc: Asio Reasoned Cancellation
#ifndef ARC_IMPL_CO_SPAWN_HPP
#define ARC_IMPL_CO_SPAWN_HPP

#include <arc/detail/bound_handler.hpp>
#include <arc/error.hpp>

#include <boost/asio/append.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>

#include <concepts>
#include <optional>

namespace arc::detail {

// Installed in the spawn token's own slot: turns a request there into a
// request on the task's source, with the best reason available.
template <typename View>
class task_link
{
public:
  task_link(task_ref task, task_ref parent, View view) noexcept
    : task_(std::move(task)), parent_(std::move(parent)), view_(view)
  {
  }

  void operator()(asio::cancellation_type_t type)
  {
    // Through an arc slot the reason flows unchanged: the task is the
    // operation that source cancelled.
    if (const cancel_reason& r = view_.reason(); r && r.kind() != reason_kind::unspecified)
    {
      task_.get()->cancel(r, type);
      return;
    }
    // A plain Asio slot says nothing; if the spawning task is cancelled, that
    // is why, one hop up.
    task_state* p = parent_.get();
    task_.get()->cancel(
        p && p->cancelled() ? reason::parent(p->first_reason()) : reason::unspecified(), type);
  }

private:
  task_ref task_;
  task_ref parent_;
  View view_;
};

// Clears the completion handler's own slot (connected to the task by
// task_link), then calls it. Runs on the handler's executor, so the clear is
// serialised with whoever emits into that slot: a parent on another strand
// may be emitting into it as the child completes.
template <typename Handler>
class clear_then_call
{
public:
  using arc_wrapped_handler = Handler;

  template <typename H>
  clear_then_call(H&& h, bool linked) : handler_(std::forward<H>(h)), linked_(linked)
  {
  }

  template <typename... Args>
  void operator()(Args&&... args)
  {
    if (linked_)
      asio::get_associated_cancellation_slot(handler_).clear();
    std::move(handler_)(std::forward<Args>(args)...);
  }

  Handler handler_;

private:
  bool linked_;
};

// Receives the coroutine's result from boost::asio::co_spawn and delivers it
// to the user's handler on that handler's executor, holding work on it
// meanwhile. It has no associated executor of its own: Boost 1.81's co_spawn
// then emits cancellation synchronously instead of through a raw pointer
// (asio#1332).
template <typename Handler, typename Executor>
class task_completion
{
public:
  template <typename H>
  task_completion(H&& h, const Executor& ex, bool linked, task_ref task)
    : handler_(std::forward<H>(h), linked), work_(make_work(handler_.handler_, ex)),
      task_(std::move(task))
  {
  }

  template <typename... Args>
  void operator()(std::exception_ptr e, Args&&... args)
  {
    // A handler that keeps books on its task (a group's child) sees the
    // task's own outcome first, here on the task's executor, and decides
    // what its handler gets. An exception that this throws (a group's
    // on_error) leaves run() once the handler has been delivered.
    std::exception_ptr hook_error;
    if constexpr (requires(Handler& h, std::exception_ptr& x) {
                    { h.arc_task_complete(*task_, x, args...) } -> std::same_as<std::exception_ptr>;
                  })
      hook_error = handler_.handler_.arc_task_complete(*task_, e, args...);
    // A task that ends with an exception once it has been cancelled ends
    // because of the cancellation, whatever its body threw: it completes with
    // the reason (as asyncio's CancelledError(msg) does).
    else if (e && task_->cancelled()) [[unlikely]]
      e = std::make_exception_ptr(cancelled_error(task_->first_reason()));
    deliver(std::move(e), std::forward<Args>(args)...);
    if (hook_error) [[unlikely]]
      std::rethrow_exception(hook_error);
  }

private:
  template <typename... Args>
  void deliver(std::exception_ptr e, Args&&... args)
  {
    // Runs on the task's executor, holding the task. From now on an executor
    // captured inside the task runs plain code.
    task_->finished_.store(true, std::memory_order_release);
    task_ = task_ref();
    task_scope no_task(nullptr);
    if constexpr (has_associated_executor<Handler>)
    {
      // Deliver on the handler's own executor, as Asio's co_spawn would.
      auto ex = std::move(*work_);
      work_.reset();
      // A chain of tasks each awaiting the next completes one into the other,
      // inline while on the same executor: past a few levels, post, so that
      // nesting of any depth uses bounded stack.
      static thread_local unsigned depth = 0;
      if (depth < 16)
      {
        ++depth;
        struct leave
        {
          ~leave() { --depth; }
        } guard;
        asio::dispatch(ex, asio::append(std::move(handler_), std::move(e), std::forward<Args>(args)...));
      }
      else
        asio::post(ex, asio::append(std::move(handler_), std::move(e), std::forward<Args>(args)...));
    }
    else
      // No executor of its own: Asio would run it on the spawn executor,
      // which is where this runs.
      std::move(handler_)(std::move(e), std::forward<Args>(args)...);
  }

  static auto make_work(const Handler& h, const Executor& ex)
  {
    if constexpr (has_associated_executor<Handler>)
      return std::optional(asio::prefer(asio::get_associated_executor(h, ex),
          asio::execution::outstanding_work.tracked));
    else
      return 0;
  }

  clear_then_call<Handler> handler_;
  decltype(make_work(std::declval<const Handler&>(), std::declval<const Executor&>())) work_;
  task_ref task_;
};

template <typename Executor>
class initiate_co_spawn
{
public:
  using executor_type = Executor;

  explicit initiate_co_spawn(const Executor& ex) : executor_(ex) {}

  // Run the coroutine with @p task as its context instead of a new one (a
  // with_timeout scope, or a group's child, made and linked by the group).
  initiate_co_spawn(const Executor& ex, task_ref task) : executor_(ex), task_(std::move(task)) {}

  // arc::bind_cancel(src, token): the new task becomes a child of @p src,
  // which passes its requests on unchanged. No node of bind_cancel's own is
  // needed in between (binds_to_source).
  initiate_co_spawn arc_bind_source(source_state* src) const
  {
    initiate_co_spawn bound(*this);
    bound.source_ = source_ref(src);
    return bound;
  }

  executor_type get_executor() const noexcept { return executor_; }

  template <typename Handler, typename Spawnable>
  void operator()(Handler&& handler, Spawnable&& spawnable) const
  {
    using handler_type = std::decay_t<Handler>;
    task_ref parent(current_task());
    // Spawning on the current task's own executor (co_await
    // this_coro::executor) runs the child on the executor underneath, so
    // task executors never stack.
    Executor ex = executor_;
    if constexpr (std::is_same_v<Executor, asio::any_io_executor>)
      ex = unwrap_task_executor(std::move(ex));
    task_ref task = task_ ? task_
                          : task_ref::adopt(task_state_impl<Executor>::create(
                              cancel_source_options{}.history_limit, ex, nullptr));
    task->is_own_executor_ = &task_executor<Executor>::holds;
    // An executor that claims its spawns (a shield executor) gets the task
    // before it starts, and nothing outside is linked to it.
    constexpr bool claimed = requires(const Executor& e, task_state& t) { e.arc_shielded_spawn(t); };
    if constexpr (claimed)
      if (!task_)
        ex.arc_shielded_spawn(*task);
    if (source_ && !task_ && !claimed)
      source_->attach_child(task.get(), unchanged_policy());

    // A scope of a task (with_timeout's body) already follows the task
    // through its source; linking the spawn's slot too would deliver the
    // task's requests twice.
    bool linked = false;
    auto slot = asio::get_associated_cancellation_slot(handler);
    if (!claimed && slot.is_connected() && task->owner() == task.get())
    {
      using view = decltype(reason_view(slot));
      slot.template emplace<task_link<view>>(task, parent, reason_view(slot));
      linked = true;
    }

    // Bind the coroutine to the task by hand (as bind_cancel would), with the
    // task's own node, whose gate opens on the coroutine's first run and
    // whose emits are serialised with the coroutine.
    using completion_type = task_completion<handler_type, Executor>;
    task_executor<Executor> task_ex(ex, task);
    completion_type completion(std::forward<Handler>(handler), ex, linked, task);
    task_gate* node = &task->gate_;
    node->attach(task.get());
    bound_handler<completion_type, false> bound(std::move(completion), node);
    node->link();
    asio::co_spawn(std::move(task_ex), std::forward<Spawnable>(spawnable), std::move(bound));
  }

private:
  Executor executor_;
  task_ref task_;
  source_ref source_; // bind_cancel's source, if any (see arc_bind_source)
};

} // namespace arc::detail

namespace arc::spawn_functions {

template <typename Executor, typename T, typename AwaitableExecutor,
    BOOST_ASIO_COMPLETION_TOKEN_FOR(void(std::exception_ptr, T)) CompletionToken>
  requires(boost::asio::execution::is_executor<Executor>::value
      || boost::asio::is_executor<Executor>::value)
auto co_spawn(const Executor& ex, boost::asio::awaitable<T, AwaitableExecutor> a,
    CompletionToken&& token)
{
  static_assert(std::is_constructible_v<AwaitableExecutor, detail::task_executor<Executor>>,
      "arc::co_spawn needs an awaitable whose executor type can hold an adapter, "
      "such as boost::asio::any_io_executor");
  return boost::asio::async_initiate<CompletionToken, void(std::exception_ptr, T)>(
      detail::initiate_co_spawn<Executor>(ex), token, std::move(a));
}

template <typename Executor, typename AwaitableExecutor,
    BOOST_ASIO_COMPLETION_TOKEN_FOR(void(std::exception_ptr)) CompletionToken>
  requires(boost::asio::execution::is_executor<Executor>::value
      || boost::asio::is_executor<Executor>::value)
auto co_spawn(const Executor& ex, boost::asio::awaitable<void, AwaitableExecutor> a,
    CompletionToken&& token)
{
  static_assert(std::is_constructible_v<AwaitableExecutor, detail::task_executor<Executor>>,
      "arc::co_spawn needs an awaitable whose executor type can hold an adapter, "
      "such as boost::asio::any_io_executor");
  return boost::asio::async_initiate<CompletionToken, void(std::exception_ptr)>(
      detail::initiate_co_spawn<Executor>(ex), token, std::move(a));
}

template <typename ExecutionContext, typename T, typename AwaitableExecutor,
    BOOST_ASIO_COMPLETION_TOKEN_FOR(detail::spawn_signature_t<T>) CompletionToken>
  requires std::is_convertible_v<ExecutionContext&, boost::asio::execution_context&>
auto co_spawn(ExecutionContext& ctx, boost::asio::awaitable<T, AwaitableExecutor> a,
    CompletionToken&& token)
{
  return arc::co_spawn(ctx.get_executor(), std::move(a),
      std::forward<CompletionToken>(token));
}

template <typename Executor, typename F,
    BOOST_ASIO_COMPLETION_TOKEN_FOR(detail::function_spawn_signature<F>) CompletionToken>
  requires(boost::asio::execution::is_executor<Executor>::value
      || boost::asio::is_executor<Executor>::value)
  && std::is_invocable_v<F>
auto co_spawn(const Executor& ex, F&& f, CompletionToken&& token)
{
  return boost::asio::async_initiate<CompletionToken, detail::function_spawn_signature<F>>(
      detail::initiate_co_spawn<Executor>(ex), token, std::forward<F>(f));
}

template <typename ExecutionContext, typename F,
    BOOST_ASIO_COMPLETION_TOKEN_FOR(detail::function_spawn_signature<F>) CompletionToken>
  requires std::is_convertible_v<ExecutionContext&, boost::asio::execution_context&>
  && std::is_invocable_v<F>
auto co_spawn(ExecutionContext& ctx, F&& f, CompletionToken&& token)
{
  return arc::co_spawn(ctx.get_executor(), std::forward<F>(f),
      std::forward<CompletionToken>(token));
}

} // namespace arc::spawn_functions

#endif
