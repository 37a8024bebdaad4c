// arc: Asio Reasoned Cancellation
#ifndef ARC_DETAIL_SOURCE_STATE_HPP
#define ARC_DETAIL_SOURCE_STATE_HPP

#include <arc/cancel_reason.hpp>
#include <arc/detail/config.hpp>
#include <arc/detail/intrusive.hpp>
#include <arc/detail/spin_lock.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/cancellation_type.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <source_location>
#include <vector>

namespace arc::detail {

class source_state;
class source_deadline; // src/cancel_source.cpp

// Something a source notifies when it is cancelled: an operation's node or a
// child source's link. Linked into the source's list under its lock; notified
// without it.
class cancel_node
{
public:
  // One request, as itself: @p r and @p t are that request's; @p all is the
  // union of every type the source has received so far. Called without any
  // lock held, from the thread that delivers the request. May throw: the
  // source still notifies every other node (see source_state::cancel).
  virtual void notify(const cancel_reason& r, asio::cancellation_type_t t,
      asio::cancellation_type_t all) = 0;
  virtual bool try_add_ref() noexcept = 0;
  virtual void release() noexcept = 0;

  // Owned by the source, guarded by its lock.
  cancel_node* prev_ = nullptr;
  cancel_node* next_ = nullptr;
  std::size_t seen_ = 0; // the last request this node was given
  bool linked_ = false;

protected:
  ~cancel_node() = default;
};

// How a request on a parent source reaches a child source. The built-in
// policies are as_parent (the child records reason::parent(r)) and unchanged
// (a scope inside the same task records r itself); the composites of layer 5
// add their own (defer until a shield ends, absorb and count).
class link_policy
{
public:
  // Called without any lock held. Forward the request to @p child, typically
  // through child.cancel(...).
  virtual void forward(source_state& child, const cancel_reason& r,
      asio::cancellation_type_t t) const = 0;

protected:
  ~link_policy() = default;
};

const link_policy& as_parent_policy() noexcept;
const link_policy& unchanged_policy() noexcept;

// The shared state behind cancel_source handles: records requests and
// delivers each one, as itself, to every linked node.
//
// Locking protocol. One spin lock guards the list, the record of requests
// and the delivery cursor. It is held for O(1) steps only: to record a
// request, to link or unlink one node, to step the cursor. Nothing is
// allocated or freed under it, and no user code runs under it.
//
// Delivery. One thread at a time delivers a source's requests (the walker):
// it steps through the list node by node, releasing the lock around each
// notify. A request made while a walk runs is recorded at once and delivered
// by that walker in a further pass. unlink() moves the cursor past the node
// it removes, so a node may go away at any time, even during its own notify.
// A node linked after a request was recorded gets that state from link()
// and is not notified of it again.
//
// Propagation uses bounded stack: a cancel() reached from inside a delivery
// on the same thread (a child link, a cancellation handler calling cancel())
// is delivered at once up to 16 levels deep; deeper, it only records and
// queues the source, and the outermost cancel() on that thread delivers the
// queue before it returns. So chains of any depth use bounded stack.
class source_state
{
public:
  explicit source_state(std::size_t history_limit);

  source_state(const source_state&) = delete;
  source_state& operator=(const source_state&) = delete;

  // States come from Asio's recycling allocator: cached per thread inside
  // run(), as Asio's own handler memory is. The executor is taken by
  // reference and moved once: an any_io_executor passed by value through
  // each layer costs a move and a destroy a layer.
  static source_state* create(std::size_t history_limit);
  static source_state* create(std::size_t history_limit, asio::any_io_executor&& ex);

  void add_ref() noexcept { refs_.add(); }
  bool try_add_ref() noexcept { return refs_.try_add(); }
  void release() noexcept
  {
    if (refs_.release())
      destroy_chain(this);
  }

  bool cancelled() const noexcept { return cancelled_.load(std::memory_order_acquire); }

  // Valid once cancelled() is true: the first reason is written once, before
  // cancelled_ is published, and never again.
  const cancel_reason& first_reason() const noexcept { return reason_; }

  cancel_reason reason() const noexcept { return cancelled() ? reason_ : cancel_reason(); }

  // Requests made, less those withdrawn by uncancel().
  std::size_t requests() const noexcept
  {
    return requests_.load(std::memory_order_acquire) - withdrawn_.load(std::memory_order_acquire);
  }
  // Withdraw one request (asyncio's uncancel): at zero the source no longer
  // counts as cancelled, though its first reason and history stay as they
  // were, and a later request cancels it again. Returns the requests left;
  // throws system_error(arc::error::not_cancelled) if there is none.
  std::size_t uncancel();

  // The union of every cancellation type requested so far.
  asio::cancellation_type_t types() const noexcept;

  std::vector<cancel_reason> history() const;

  // Record the request and deliver it to every linked node. Returns true if
  // this request was the first. Every node is notified whatever any of them
  // throws; the first exception is then rethrown.
  bool cancel(cancel_reason r, asio::cancellation_type_t t);

  struct link_result
  {
    cancel_reason reason; // the first reason; empty if not cancelled
    asio::cancellation_type_t types = asio::cancellation_type::none;
  };

  // Link @p n. If the source is already cancelled, returns its first reason
  // and types so that the caller can deliver them (level-triggered).
  link_result link(cancel_node* n);
  void unlink(cancel_node* n) noexcept;

  // A child whose cancellation follows this source's through @p policy.
  source_state* make_child(std::size_t history_limit, const link_policy& policy);

  // Make @p child (new, not yet shared) follow this source through @p policy.
  void attach_child(source_state* child, const link_policy& policy);

  // The executor the source's own work runs on (deadlines, async_wait,
  // make_slot), if it has one. Held by the derived state that knows its type:
  // a plain source has none or an any_io_executor; a task keeps its own
  // executor's type, so a task carries no any_io_executor of its own.
  virtual bool has_executor() const noexcept { return false; }
  // Empty if has_executor() is false.
  virtual asio::any_io_executor executor() const { return {}; }

  // Cancel with @p r (or, if empty, a timeout reason made on expiry, with
  // @p after and @p where) at @p when, on the source's executor, unless the
  // source is cancelled or destroyed first; then the timer goes at once.
  // False if the source is already cancelled. Throws no_executor without an
  // executor.
  bool arm_deadline(std::chrono::steady_clock::time_point when, cancel_reason r,
      std::chrono::steady_clock::duration after, std::source_location where);

protected:
  virtual ~source_state();

  // Destroys and frees this object; a derived state overrides it to free
  // itself with its own allocator.
  virtual void destroy_self() noexcept;

private:
  class child_link final : public cancel_node
  {
  public:
    child_link(source_state* child, const link_policy& policy) noexcept
      : child_(child), policy_(&policy)
    {
    }
    void notify(const cancel_reason& r, asio::cancellation_type_t t,
        asio::cancellation_type_t all) override;
    bool try_add_ref() noexcept override { return child_->try_add_ref(); }
    void release() noexcept override { child_->release(); }

  private:
    source_state* child_;
    const link_policy* policy_;
  };

  struct request
  {
    cancel_reason reason;
    asio::cancellation_type_t type = asio::cancellation_type::none;
  };

  static void destroy_chain(source_state* s) noexcept;
  static void drop_deadlines(source_deadline* list) noexcept;

  // Under mutex_: the request with sequence number @p seq (1 is the first).
  request request_at(std::size_t seq) const;
  void walk(std::exception_ptr& error) noexcept;

  ref_count refs_;
  // See the locking protocol above.
  mutable spin_lock mutex_;
  std::atomic<bool> cancelled_{false};
  std::atomic<std::uint32_t> withdrawn_{0}; // by uncancel(); beside the flag: no padding lost
  std::atomic<std::size_t> requests_{0};
  asio::cancellation_type_t types_ = asio::cancellation_type::none;
  asio::cancellation_type_t first_type_ = asio::cancellation_type::none;
  cancel_reason reason_;
  // Requests after the first, a ring of history_limit_ entries allocated
  // (outside the lock) by the second request.
  std::unique_ptr<request[]> ring_;
  std::atomic<bool> has_ring_{false};
  std::size_t history_limit_;
  std::size_t delivered_ = 0;
  bool walking_ = false;
  cancel_node* head_ = nullptr;
  cancel_node* cursor_ = nullptr;
  source_state* parent_ = nullptr; // strong reference
  // Allocated by attach_child: most sources and tasks have no parent.
  child_link* in_parent_ = nullptr;
  source_deadline* deadlines_ = nullptr; // owned references, guarded by mutex_
};

using source_ref = ref_ptr<source_state>;

} // namespace arc::detail

#endif
