// arc: Asio Reasoned Cancellation
#ifndef ARC_IMPL_CO_SPAWN_HPP
#define ARC_IMPL_CO_SPAWN_HPP

#include <arc/detail/bound_handler.hpp>

#include <boost/asio/append.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/execution/outstanding_work.hpp>

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
    source_state* p = parent_.get();
    task_.get()->cancel(
        p && p->cancelled() ? reason::parent(p->first_reason()) : reason::unspecified(), type);
  }

private:
  task_ref task_;
  task_ref parent_;
  View view_;
};

// Receives the coroutine's result from boost::asio::co_spawn and delivers it
// to the user's handler on that handler's executor. It has no associated
// executor of its own: Boost 1.81's co_spawn then emits cancellation
// synchronously instead of through a raw pointer (asio#1332).
template <typename Handler, typename Executor>
class task_completion
{
public:
  template <typename H>
  task_completion(H&& h, const Executor& ex, bool linked)
    : handler_(std::forward<H>(h)), executor_(ex), linked_(linked),
      work_(asio::prefer(asio::get_associated_executor(handler_, executor_),
          asio::execution::outstanding_work.tracked))
  {
  }

  template <typename... Args>
  void operator()(Args&&... args)
  {
    if (linked_)
      asio::get_associated_cancellation_slot(handler_).clear();
    auto ex = std::move(*work_);
    work_.reset();
    task_scope no_task(nullptr);
    asio::dispatch(ex, asio::append(std::move(handler_), std::forward<Args>(args)...));
  }

private:
  using work_type = std::decay_t<decltype(asio::prefer(
      asio::get_associated_executor(std::declval<const Handler&>(), std::declval<const Executor&>()),
      asio::execution::outstanding_work.tracked))>;

  Handler handler_;
  Executor executor_;
  bool linked_;
  std::optional<work_type> work_;
};

template <typename T>
inline constexpr bool is_awaitable = false;

template <typename T, typename Executor>
inline constexpr bool is_awaitable<asio::awaitable<T, Executor>> = true;

// Owns one reference to a task's gated node; see op_node::make_gated.
class task_gate
{
public:
  explicit task_gate(op_node* n) noexcept : node_(n) {}
  task_gate(task_gate&& o) noexcept : node_(std::exchange(o.node_, nullptr)) {}
  task_gate& operator=(task_gate&&) = delete;
  ~task_gate()
  {
    if (node_)
    {
      node_->close_gate();
      node_->release();
    }
  }

  void open() { node_->open_gate(); }
  void close() noexcept { node_->close_gate(); }

private:
  op_node* node_;
};

// Runs the user's coroutine with the gate open.
template <typename T, typename Executor>
asio::awaitable<T, Executor> gated_body(asio::awaitable<T, Executor> body, task_gate gate)
{
  gate.open();
  struct close_on_exit
  {
    task_gate& g;
    ~close_on_exit() { g.close(); }
  } closer{gate};
  co_return co_await std::move(body);
}

template <typename F>
auto gated_call(F f, task_gate gate) -> std::invoke_result_t<F&>
{
  gate.open();
  struct close_on_exit
  {
    task_gate& g;
    ~close_on_exit() { g.close(); }
  } closer{gate};
  co_return co_await f();
}

template <typename Executor>
class initiate_co_spawn
{
public:
  using executor_type = Executor;

  explicit initiate_co_spawn(const Executor& ex) : executor_(ex) {}

  // Run the coroutine with @p task as its context instead of a new source.
  initiate_co_spawn(const Executor& ex, task_ref task) : executor_(ex), task_(std::move(task)) {}

  executor_type get_executor() const noexcept { return executor_; }

  template <typename Handler, typename Spawnable>
  void operator()(Handler&& handler, Spawnable&& spawnable) const
  {
    using handler_type = std::decay_t<Handler>;
    task_ref parent(current_task());
    task_ref task = task_.get() ? task_
                                : task_ref::adopt(new source_state(
                                    cancel_source_options{}.history_limit,
                                    asio::any_io_executor(executor_)));

    bool linked = false;
    auto slot = asio::get_associated_cancellation_slot(handler);
    if (slot.is_connected())
    {
      using view = decltype(reason_view(slot));
      slot.template emplace<task_link<view>>(task, parent, reason_view(slot));
      linked = true;
    }

    // Bind the coroutine to the task by hand (as bind_cancel would), keeping
    // a second reference to the node for the gate.
    using completion_type = task_completion<handler_type, Executor>;
    task_executor<Executor> task_ex(executor_, task);
    auto* node = op_node_impl<task_executor<Executor>>::create(task.get(), task_ex);
    node->make_gated();
    bound_handler<completion_type, false> bound(
        completion_type(std::forward<Handler>(handler), executor_, linked), node);
    node->link();
    node->add_ref();
    task_gate gate(node);
    if constexpr (is_awaitable<std::decay_t<Spawnable>>)
      asio::co_spawn(std::move(task_ex), gated_body(std::forward<Spawnable>(spawnable), std::move(gate)),
          std::move(bound));
    else
      asio::co_spawn(std::move(task_ex),
          gated_call(std::decay_t<Spawnable>(std::forward<Spawnable>(spawnable)), std::move(gate)),
          std::move(bound));
  }

private:
  Executor executor_;
  task_ref task_;
};

template <typename T>
struct spawn_signature
{
  using type = void(std::exception_ptr, T);
};

template <>
struct spawn_signature<void>
{
  using type = void(std::exception_ptr);
};

template <typename F>
using function_spawn_signature = typename spawn_signature<
    typename std::invoke_result_t<F>::value_type>::type;

} // namespace arc::detail

namespace arc {

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
    typename CompletionToken>
  requires std::is_convertible_v<ExecutionContext&, boost::asio::execution_context&>
auto co_spawn(ExecutionContext& ctx, boost::asio::awaitable<T, AwaitableExecutor> a,
    CompletionToken&& token)
{
  return arc::co_spawn(ctx.get_executor(), std::move(a),
      std::forward<CompletionToken>(token));
}

template <typename Executor, typename F, typename CompletionToken>
  requires(boost::asio::execution::is_executor<Executor>::value
      || boost::asio::is_executor<Executor>::value)
  && std::is_invocable_v<F>
auto co_spawn(const Executor& ex, F&& f, CompletionToken&& token)
{
  return boost::asio::async_initiate<CompletionToken, detail::function_spawn_signature<F>>(
      detail::initiate_co_spawn<Executor>(ex), token, std::forward<F>(f));
}

template <typename ExecutionContext, typename F, typename CompletionToken>
  requires std::is_convertible_v<ExecutionContext&, boost::asio::execution_context&>
  && std::is_invocable_v<F>
auto co_spawn(ExecutionContext& ctx, F&& f, CompletionToken&& token)
{
  return arc::co_spawn(ctx.get_executor(), std::forward<F>(f),
      std::forward<CompletionToken>(token));
}

} // namespace arc

#endif
