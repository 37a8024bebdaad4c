// arc: Asio Reasoned Cancellation
#ifndef ARC_IMPL_REGISTRY_HPP
#define ARC_IMPL_REGISTRY_HPP

#include <arc/co_spawn.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <vector>

namespace arc::detail {

// Defined in src/registry.cpp.
asio::awaitable<shutdown_outcome> run_context_shutdown(registry_core_ptr core,
    std::vector<group_ref_ptr> groups, cancel_reason r, shutdown_options opts);
asio::awaitable<shutdown_outcome> run_signal_shutdown(registry_core_ptr core,
    std::vector<int> signals, shutdown_options opts, std::source_location where);

// The initiation of arc::async_shutdown(ctx, ...) and shutdown_on_signals:
// the coroutine made by @p start, run as an arc task on the context's
// executor, its outcome delivered as (error_code, report).
template <typename Start>
class initiate_context_shutdown
{
public:
  using executor_type = asio::any_io_executor;

  initiate_context_shutdown(asio::any_io_executor ex, Start start)
    : ex_(std::move(ex)), start_(std::move(start))
  {
  }

  executor_type get_executor() const noexcept { return ex_; }

  template <typename Handler>
  void operator()(Handler&& h) const
  {
    arc::co_spawn(ex_, start_(), shutdown_completion<std::decay_t<Handler>>(std::forward<Handler>(h)));
  }

private:
  asio::any_io_executor ex_;
  Start start_;
};

} // namespace arc::detail

namespace arc {

template <typename ExecutionContext, typename CompletionToken>
  requires std::is_convertible_v<ExecutionContext&, boost::asio::execution_context&>
auto async_shutdown(ExecutionContext& ctx, cancel_reason reason, shutdown_options opts,
    CompletionToken&& token)
{
  // The groups are those registered when the shutdown starts; each is closed
  // at once, so that no spawn gets in after async_shutdown has returned.
  detail::registry_core_ptr core = detail::registry_core_of(ctx);
  std::vector<detail::group_ref_ptr> groups = core->groups();
  for (const detail::group_ref_ptr& g : groups)
    g->close();
  auto start = [core = std::move(core), groups = std::move(groups), reason = std::move(reason), opts]
  { return detail::run_context_shutdown(core, groups, reason, opts); };
  return boost::asio::async_initiate<CompletionToken,
      void(boost::system::error_code, shutdown_report)>(
      detail::initiate_context_shutdown<decltype(start)>(ctx.get_executor(), std::move(start)),
      token);
}

template <typename ExecutionContext, typename CompletionToken>
  requires std::is_convertible_v<ExecutionContext&, boost::asio::execution_context&>
auto shutdown_on_signals(ExecutionContext& ctx, std::initializer_list<int> signals,
    shutdown_options opts, CompletionToken&& token, std::source_location where)
{
  auto start = [core = detail::registry_core_of(ctx), signals = std::vector<int>(signals), opts, where]
  { return detail::run_signal_shutdown(core, signals, opts, where); };
  return boost::asio::async_initiate<CompletionToken,
      void(boost::system::error_code, shutdown_report)>(
      detail::initiate_context_shutdown<decltype(start)>(ctx.get_executor(), std::move(start)),
      token);
}

} // namespace arc

#endif
