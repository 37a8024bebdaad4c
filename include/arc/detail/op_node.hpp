// arc: Asio Reasoned Cancellation
#ifndef ARC_DETAIL_OP_NODE_HPP
#define ARC_DETAIL_OP_NODE_HPP

#include <arc/detail/source_state.hpp>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/recycling_allocator.hpp>

#include <concepts>
#include <memory>
#include <type_traits>
#include <utility>

namespace arc::detail {

// Marks a node that has no executor to deliver emits on: they run on the
// thread that cancels, as with a plain Asio signal.
struct no_executor
{
};

// A posted or dispatched emit. Owns one reference to its node.
class node_emitter
{
public:
  node_emitter(op_node* n, cancel_reason r, asio::cancellation_type_t t) noexcept
    : node_(n), reason_(std::move(r)), type_(t)
  {
  }
  node_emitter(node_emitter&& o) noexcept
    : node_(std::exchange(o.node_, nullptr)), reason_(std::move(o.reason_)), type_(o.type_)
  {
  }
  node_emitter& operator=(node_emitter&&) = delete;
  ~node_emitter()
  {
    if (node_)
      node_->release();
  }

  void operator()() { node_->emit(reason_, type_); }

private:
  op_node* node_;
  cancel_reason reason_;
  asio::cancellation_type_t type_;
};

// True when the calling thread already runs on @p ex, for the executors that
// can tell (Asio's io_context executors and strands, any_io_executor holding
// one, arc's task executor). False means "don't know": dispatch decides.
template <typename Executor>
bool running_here(const Executor& ex) noexcept
{
  if constexpr (requires { { ex.running_in_this_thread() } -> std::convertible_to<bool>; })
    return ex.running_in_this_thread();
  else if constexpr (std::is_same_v<Executor, asio::any_io_executor>)
  {
    if (const auto* io = ex.template target<asio::io_context::executor_type>())
      return io->running_in_this_thread();
    return false;
  }
  else
    return false;
}

template <typename Executor>
class op_node_impl final : public op_node
{
public:
  using allocator_type = asio::recycling_allocator<op_node_impl>;

  op_node_impl(source_state* src, Executor ex) : op_node(src), executor_(std::move(ex)) {}

  static op_node_impl* create(source_state* src, Executor ex)
  {
    allocator_type alloc;
    op_node_impl* p = alloc.allocate(1);
    try
    {
      return ::new (p) op_node_impl(src, std::move(ex));
    }
    catch (...)
    {
      alloc.deallocate(p, 1);
      throw;
    }
  }

  void notify(const cancel_reason& r, asio::cancellation_type_t t) override
  {
    add_ref();
    if constexpr (std::is_same_v<Executor, no_executor>)
      node_emitter(this, r, t)();
    else if (!can_post())
      node_emitter(this, r, t)();
    else if (must_post_from_here())
    {
      release(); // post_emit takes its own reference
      post_emit(r, t);
    }
    else if (running_here(executor_))
      // Already on the operation's executor: what dispatch would do, minus
      // its type-erased round trip.
      node_emitter(this, r, t)();
    else
      // Inline when the caller already runs on the operation's executor;
      // otherwise queued there, never run on the cancelling thread.
      asio::dispatch(executor_, node_emitter(this, r, t));
  }

private:
  bool can_post() const noexcept override
  {
    if constexpr (std::is_same_v<Executor, no_executor>)
      return false;
    else if constexpr (std::is_same_v<Executor, asio::any_io_executor>)
      return static_cast<bool>(executor_);
    else
      return true;
  }

  void post_emit(const cancel_reason& r, asio::cancellation_type_t t) override
  {
    if constexpr (!std::is_same_v<Executor, no_executor>)
    {
      add_ref();
      asio::post(executor_, node_emitter(this, r, t));
    }
  }

  void destroy() noexcept override
  {
    allocator_type alloc;
    this->~op_node_impl();
    alloc.deallocate(this, 1);
  }

  Executor executor_;
};

// The slot an operation sees when it is bound to a source. Non-owning: the
// completion handler wrapper owns the node.
class node_slot
{
public:
  constexpr node_slot() noexcept = default;
  explicit node_slot(op_node* n) noexcept : node_(n) {}

  template <typename CancellationHandler, typename... Args>
  CancellationHandler& emplace(Args&&... args)
  {
    return node_->template emplace<CancellationHandler>(std::forward<Args>(args)...);
  }

  template <typename CancellationHandler>
  std::decay_t<CancellationHandler>& assign(CancellationHandler&& h)
  {
    return emplace<std::decay_t<CancellationHandler>>(std::forward<CancellationHandler>(h));
  }

  void clear() noexcept
  {
    if (node_)
      node_->clear();
  }

  bool is_connected() const noexcept { return node_ != nullptr; }
  bool has_handler() const noexcept { return node_ && node_->has_handler(); }

  const cancel_reason& reason() const noexcept
  {
    static const cancel_reason none;
    return node_ ? node_->reason() : none;
  }

  void note_reason(const cancel_reason& r) noexcept
  {
    if (node_)
      node_->note_reason(r);
  }

  op_node* node() const noexcept { return node_; }

  friend bool operator==(const node_slot& a, const node_slot& b) noexcept
  {
    return a.node_ == b.node_;
  }

private:
  op_node* node_ = nullptr;
};

} // namespace arc::detail

#endif
