// arc: Asio Reasoned Cancellation
#ifndef ARC_DETAIL_BOUND_HANDLER_HPP
#define ARC_DETAIL_BOUND_HANDLER_HPP

#include <arc/cancellation_signal.hpp>
#include <arc/detail/initiation.hpp>
#include <arc/detail/wrapped_handler.hpp>
#include <arc/detail/op_node.hpp>
#include <arc/detail/task_executor.hpp>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associator.hpp>

#include <type_traits>
#include <utility>

namespace arc {
class cancel_source;
} // namespace arc

namespace arc::detail {

// --- Reading the reason an arc slot carries, without owning it --------------

struct no_reason_view
{
  const cancel_reason& reason() const noexcept { return reason::unspecified(); }
};

inline node_view reason_view(const node_slot& s) noexcept { return node_view(s.node()); }
inline cancellation_slot reason_view(const cancellation_slot& s) noexcept { return s; }
template <typename Slot>
  requires requires(const Slot& s) { s.explain_completion(cancel_reason()); }
  && (!std::is_same_v<Slot, node_slot>) && (!std::is_same_v<Slot, cancellation_slot>)
auto reason_view(const Slot& s) noexcept
{
  return s.view();
}
template <typename Slot>
no_reason_view reason_view(const Slot&) noexcept
{
  return {};
}

// Tell an arc slot why its operation ended; a no-op for other slot types.
template <typename Slot>
void explain_completion(Slot& s, const cancel_reason& r) noexcept
{
  if constexpr (requires { s.explain_completion(r); })
    s.explain_completion(r);
}

// --- Forwarding the handler's own slot ---------------------------------------

// Installed in the slot the completion handler already had (e.g. a coroutine's),
// so that cancellation from there still reaches the bound operation. Target
// is an op_node or a timeout state: anything with add_ref, release and
// emit(reason, type).
template <typename Target, typename View>
class slot_forwarder
{
public:
  slot_forwarder(Target* t, View v) noexcept : target_(t), view_(v) { target_->add_ref(); }
  slot_forwarder(const slot_forwarder&) = delete;
  ~slot_forwarder() { target_->release(); }

  void operator()(asio::cancellation_type_t t)
  {
    const cancel_reason& r = view_.reason();
    target_->emit(r ? r : reason::unspecified(), t);
  }

private:
  Target* target_;
  View view_;
};

// Connect @p handler's own slot, if it has one, to @p target. Returns whether
// it did; the caller then clears that slot when the operation completes.
template <typename Handler, typename Target>
bool connect_own_slot(const Handler& handler, Target* target)
{
  auto own = asio::get_associated_cancellation_slot(handler);
  if (!own.is_connected())
    return false;
  using view = decltype(reason_view(own));
  own.template emplace<slot_forwarder<Target, view>>(target, reason_view(own));
  return true;
}

// --- The reason of the completion being delivered ---------------------------

// While a bound handler calls the handler it wraps, the node's reason, for
// adapters inside it (arc::reasoned_t) that cannot see the node. Trivial:
// no guard on the thread_local.
inline thread_local const cancel_reason* completing_reason_ = nullptr;

inline const cancel_reason* completing_reason() noexcept { return completing_reason_; }

class completing_reason_scope
{
public:
  explicit completing_reason_scope(const cancel_reason* r) noexcept
    : prev_(std::exchange(completing_reason_, r))
  {
  }
  completing_reason_scope(const completing_reason_scope&) = delete;
  completing_reason_scope& operator=(const completing_reason_scope&) = delete;
  ~completing_reason_scope() { completing_reason_ = prev_; }

private:
  const cancel_reason* prev_;
};

// --- The completion handler wrapper ------------------------------------------

// Owns one reference to the node. On completion (or destruction, when the
// io_context is destroyed with the operation pending) it disarms the node, so
// that no later emit reaches the handler the operation left installed.
template <typename Handler, bool AppendReason>
class bound_handler
{
public:
  using arc_wrapped_handler = Handler;
  using cancellation_slot_type = node_slot;

  template <typename H>
  bound_handler(H&& h, op_node* n) : handler_(std::forward<H>(h)), node_(n)
  {
  }

  bound_handler(bound_handler&& o) noexcept(std::is_nothrow_move_constructible_v<Handler>)
    : handler_(std::move(o.handler_)), node_(std::exchange(o.node_, nullptr)),
      forwarded_(o.forwarded_)
  {
  }

  bound_handler& operator=(bound_handler&&) = delete;

  ~bound_handler()
  {
    // Not invoked: the operation is being destroyed. The handler's own slot
    // may already be gone, so it is not touched; the forwarder keeps the
    // node's memory alive for as long as it exists.
    if (node_)
    {
      node_->disarm();
      node_->release();
    }
  }

  cancellation_slot_type get_cancellation_slot() const noexcept { return node_slot(node_); }

  // Connect the handler's own slot, if it has one, to the node.
  void forward_own_slot() { forwarded_ = connect_own_slot(handler_, node_); }

  template <typename... Args>
  void operator()(Args&&... args)
  {
    op_node* n = std::exchange(node_, nullptr);
    n->disarm();
    if (forwarded_)
      asio::get_associated_cancellation_slot(handler_).clear();
    if constexpr (AppendReason)
    {
      cancel_reason r = n->reason();
      n->release();
      std::move(handler_)(std::forward<Args>(args)..., std::move(r));
    }
    else
    {
      cancel_reason r = n->reason(); // empty, and free, unless cancelled
      n->release();
      completing_reason_scope scope(&r);
      std::move(handler_)(std::forward<Args>(args)...);
    }
  }

  Handler handler_;

private:
  op_node* node_;
  bool forwarded_ = false;
};

// Start @p init with @p h bound to a fresh node of @p src (null for a
// moved-from source: the node then never fires).
template <bool AppendReason, typename Initiation, typename Handler, typename... Args>
void launch_bound(Initiation&& init, source_state* src, Handler&& h, Args&&... args)
{
  using handler_type = std::decay_t<Handler>;
  auto ex = emit_executor(init, h, src);
  task_state* serial = serializer_for(ex);
  auto* node = op_node_impl<decltype(ex)>::create(src, std::move(ex), serial);
  bound_handler<handler_type, AppendReason> bh(std::forward<Handler>(h), node);
  bh.forward_own_slot();
  node->link();
  node->add_ref(); // kept across the initiation, which may consume bh
  struct release_on_exit
  {
    op_node* n;
    ~release_on_exit() { n->release(); }
  } guard{node};
  std::forward<Initiation>(init)(std::move(bh), std::forward<Args>(args)...);
  // Nothing reaches the operation before its initiating function returns.
  node->open();
}

} // namespace arc::detail

#endif
