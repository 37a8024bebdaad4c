// arc: Asio Reasoned Cancellation
#ifndef ARC_DETAIL_OP_NODE_HPP
#define ARC_DETAIL_OP_NODE_HPP

#include <arc/detail/handler_storage.hpp>
#include <arc/detail/source_state.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/recycling_allocator.hpp>

#include <atomic>
#include <cstdint>
#include <concepts>
#include <mutex>
#include <thread>
#include <type_traits>
#include <utility>

namespace arc::detail {

class op_node;

// Something that serialises an operation's emits with the code that owns the
// operation: a task (task_state, layer 4) runs them only while its coroutine
// is suspended. submit() takes the node's pending emit and runs it under
// that serialisation, now or later; it never runs it inside the caller's own
// critical section. A serialiser is a source (a task is both), so counting
// references to it needs no virtual call; submit() is virtual because each
// executor type has its own (task_state_impl).
class emit_serializer : public source_state
{
public:
  virtual void submit(op_node* n, bool never_inline) = 0;

protected:
  explicit emit_serializer(std::size_t history_limit) noexcept : source_state(history_limit) {}
  ~emit_serializer() override = default;
};

// The node an operation's cancellation handler lives in. One per operation,
// so two operations never share a handler (Asio's slots allow only one).
//
// Where an emit runs (the rule, stated once): on the operation's executor,
// which is the initiation's get_executor() (the I/O executor), unless the
// completion handler has an associated executor of its own; with neither,
// inline on the thread that delivers the request, as a plain Asio signal
// would. It runs inline when the delivering thread is already running that
// executor, else it is posted. If the executor belongs to an arc task, the
// task's serialiser decides instead (see task_state).
//
// Locking protocol (the node's spin lock guards everything below). The lock
// is never held while the cancellation handler runs. While one thread calls
// the handler (calling_), every other emit only records its type as pending,
// and the calling thread delivers it when the call returns; so calls never
// overlap. The handler may, on the calling thread, complete its operation
// (disarm), clear or re-emplace the slot, or cancel any source: the handler
// storage retires a handler cleared from inside its own call. Another thread
// that clears or disarms while a call runs waits for that call to return, so
// after disarm() returns the handler is neither running nor reachable.
//
// Ordering. A node is closed until the initiating function that bound it
// has returned (open()); emits meanwhile are pending. Types accumulate: the
// handler receives the union of every type requested, so a later, weaker
// request never undoes a stronger one, and a type already delivered is not
// delivered again. The first reason sticks.
class op_node : public cancel_node
{
public:
  explicit op_node(source_state* src) noexcept : source_(src)
  {
    if (source_)
      source_->add_ref();
  }

  bool try_add_ref() noexcept override { return refs_.try_add(); }
  void add_ref() noexcept { refs_.add(); }
  void release() noexcept override
  {
    if (refs_.release())
      destroy();
  }

  // From the source, on the delivering thread.
  void notify(const cancel_reason& r, asio::cancellation_type_t,
      asio::cancellation_type_t all) override
  {
    add_pending(r, all);
    schedule(false);
  }

  // Record a request without delivering it: the first reason sticks, the
  // type joins the pending ones.
  void add_pending(const cancel_reason& r, asio::cancellation_type_t t) noexcept
  {
    std::lock_guard lock(lock_);
    if (!armed_)
      return;
    if (!reason_)
      reason_ = r;
    if (pending_requests_++ == 0)
      next_ = r;
    else
      latest_ = r;
    pending_ |= t;
  }

  // Deliver @p r and @p t now, on this thread; the caller is on the
  // operation's executor (or there is none).
  void emit(const cancel_reason& r, asio::cancellation_type_t t)
  {
    add_pending(r, t);
    deliver();
  }

  // Deliver what is pending, if the node is open and has a handler.
  void deliver()
  {
    std::unique_lock lock(lock_);
    for (;;)
    {
      if (!armed_ || !open_ || calling_ || !pending_requests_ || !handler_.has_handler())
        return;
      // Every request is delivered, in order (a task behind this node counts
      // them and records their reasons), with the union of the types so far.
      // Requests that queued up while the node could not deliver are
      // coalesced into the first and the last of them.
      const auto all = delivered_ | pending_;
      pending_ = asio::cancellation_type::none;
      delivered_ = all;
      current_ = std::move(next_);
      if (--pending_requests_ != 0)
      {
        pending_requests_ = 1;
        next_ = std::move(latest_);
      }
      calling_ = true;
      caller_ = std::this_thread::get_id();
      delivered_since_hold_ = true;
      lock.unlock();
      struct end_call
      {
        std::unique_lock<spin_lock>& lock;
        bool& calling;
        ~end_call()
        {
          if (!lock.owns_lock())
            lock.lock();
          calling = false;
        }
      } guard{lock, calling_};
      handler_.call(all);
    }
  }

  template <typename Handler, typename... Args>
  Handler& emplace(Args&&... args)
  {
    return emplace_owned<Handler>(nullptr, std::forward<Args>(args)...);
  }

  // Install a handler on behalf of @p owner (a cancel_source::slot_type
  // binding): when the owner's last copy is gone, so is the handler, if it
  // is still the one installed (see owner_gone).
  template <typename Handler, typename... Args>
  Handler& emplace_owned(const void* owner, Args&&... args)
  {
    std::unique_lock lock(lock_);
    wait_for_other_caller(lock);
    Handler& h = handler_.template emplace<Handler>(std::forward<Args>(args)...);
    owner_ = owner;
    // Level-triggered: a new handler (a composed operation's next step, or
    // the next operation on a reused slot) gets what the last one was given.
    if (delivered_ != asio::cancellation_type::none)
    {
      pending_ |= std::exchange(delivered_, asio::cancellation_type::none);
      if (pending_requests_ == 0)
      {
        pending_requests_ = 1;
        next_ = reason_;
      }
    }
    const bool post = open_ && !calling_ && pending_requests_;
    lock.unlock();
    if (post)
      schedule(true); // never inside the initiating function
    return h;
  }

  void clear() noexcept
  {
    std::unique_lock lock(lock_);
    wait_for_other_caller(lock);
    handler_.clear();
    owner_ = nullptr;
  }

  // The operation that installed the current handler through @p owner has
  // completed (its handler, holding the owner's last copy, is gone): Asio's
  // leaf operations leave their handler installed, and it must not be
  // reached once its I/O object may be destroyed.
  void owner_gone(const void* owner) noexcept
  {
    std::unique_lock lock(lock_);
    wait_for_other_caller(lock);
    if (owner_ == owner)
    {
      handler_.clear();
      owner_ = nullptr;
    }
  }

  bool has_handler() noexcept
  {
    std::lock_guard lock(lock_);
    return handler_.has_handler();
  }

  // Read only by the node's own operation: inside its cancellation handler
  // or once it has completed.
  const cancel_reason& reason() const noexcept { return reason_; }

  // The reason of the request being delivered now: read by arc's own
  // cancellation handlers (a task's link), which pass each request on as
  // itself. Valid inside the handler's call.
  const cancel_reason& current_reason() const noexcept { return current_; }

  // Says why the operation ended when the request reached it another way
  // (arc::cancel_after's timeout). The first reason still sticks.
  void explain_completion(const cancel_reason& r) noexcept
  {
    std::lock_guard lock(lock_);
    if (!reason_)
      reason_ = r;
  }

  // The operation completed (or its handler was destroyed): drop the handler
  // so that no later emit reaches it, and leave the source.
  void disarm() noexcept
  {
    {
      std::unique_lock lock(lock_);
      wait_for_other_caller(lock);
      armed_ = false;
      pending_ = asio::cancellation_type::none;
      pending_requests_ = 0;
      handler_.clear();
    }
    if (source_ && linked_)
      source_->unlink(this);
  }

  // Link into the source. If it is already cancelled, its reason and types
  // are kept pending until the node opens (level-triggered).
  void link()
  {
    if (!source_)
      return;
    if (auto now = source_->link(this); now.reason)
      add_pending(now.reason, now.types);
  }

  // The initiating function has returned (or, for a task, its coroutine runs
  // its body): deliver what is pending, posted, never inline.
  void open()
  {
    bool post;
    {
      std::lock_guard lock(lock_);
      open_ = true;
      post = armed_ && pending_requests_ && handler_.has_handler();
    }
    if (post)
      schedule(true);
  }

  // Hold emits back (a shield in the task this gate binds): requests stay
  // pending, and are delivered once every hold is let go. Holds nest.
  void hold() noexcept
  {
    std::lock_guard lock(lock_);
    ++holds_;
    open_ = false;
    delivered_since_hold_ = false;
  }
  // Let go of one hold; at the last, deliver what is pending, posted, as
  // open() does, if @p deliver (not while the task's frame is being
  // destroyed). Returns true if a request was pending.
  bool unhold(bool deliver = true)
  {
    bool pending;
    bool post;
    {
      std::lock_guard lock(lock_);
      if (--holds_ != 0)
        return false;
      open_ = true;
      pending = armed_ && pending_requests_;
      post = deliver && pending && handler_.has_handler();
    }
    if (post)
      schedule(true);
    return pending;
  }

  // uncancel() withdrew every request: forget what is pending and what was
  // delivered, so that a later request is delivered as a first one.
  void withdraw() noexcept
  {
    std::lock_guard lock(lock_);
    pending_requests_ = 0;
    pending_ = asio::cancellation_type::none;
    delivered_ = asio::cancellation_type::none;
  }
  // True if the handler has been called since the last hold().
  bool delivered_since_hold() noexcept
  {
    std::lock_guard lock(lock_);
    return delivered_since_hold_;
  }

  source_state* source() const noexcept { return source_; }

  // Copies of a cancel_source::slot_type; the last one disarms the node.
  void add_slot_ref() noexcept { slot_refs_.add(); }
  bool release_slot_ref() noexcept { return slot_refs_.release(); }

  // For emit_serializer: an intrusive link, and whether the node is queued.
  op_node* serial_next_ = nullptr;
  std::atomic<bool> serial_queued_{false};

protected:
  ~op_node()
  {
    if (source_)
    {
      if (linked_)
        source_->unlink(this);
      source_->release();
    }
  }

  // For a node that lives inside another object (a task's gate): take a
  // source after construction, and let go of it once the node's last
  // reference is gone, while its memory stays.
  void set_source(source_state* src) noexcept
  {
    source_ = src;
    source_->add_ref();
  }
  void drop_source() noexcept
  {
    disarm();
    if (source_state* s = std::exchange(source_, nullptr))
      s->release();
  }

  // Deliver the pending emit on the operation's executor: inline if allowed
  // and already there, else posted.
  virtual void schedule(bool never_inline) = 0;
  virtual void destroy() noexcept = 0;

private:
  void wait_for_other_caller(std::unique_lock<spin_lock>& lock) noexcept
  {
    while (calling_ && caller_ != std::this_thread::get_id())
    {
      lock.unlock();
      std::this_thread::yield();
      lock.lock();
    }
  }

  ref_count refs_;
  ref_count slot_refs_{0};
  spin_lock lock_;
  bool armed_ = true;
  bool open_ = false;
  bool calling_ = false;
  bool delivered_since_hold_ = false;
  std::uint16_t holds_ = 0; // shields and cleanups holding the gate; they nest shallowly
  std::size_t pending_requests_ = 0;
  asio::cancellation_type_t pending_ = asio::cancellation_type::none;
  asio::cancellation_type_t delivered_ = asio::cancellation_type::none;
  std::thread::id caller_;
  const void* owner_ = nullptr; // see emplace_owned
  cancel_reason reason_;  // the first
  cancel_reason next_;    // the first one not yet delivered
  cancel_reason latest_;  // the last one requested
  cancel_reason current_; // the one being delivered
  handler_storage handler_;
  source_state* source_;
};

// Marks a node that has no executor to deliver emits on: they run on the
// thread that delivers the request, as with a plain Asio signal.
struct no_executor
{
};

// True when the calling thread already runs on @p ex, for the executors that
// can tell (Asio's io_context executors and strands, any_io_executor holding
// one, arc's task executor).
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

// A posted emit. Owns one reference to its node.
class node_emitter
{
public:
  explicit node_emitter(op_node* n) noexcept : node_(n) { node_->add_ref(); }
  node_emitter(node_emitter&& o) noexcept : node_(std::exchange(o.node_, nullptr)) {}
  node_emitter& operator=(node_emitter&&) = delete;
  ~node_emitter()
  {
    if (node_)
      node_->release();
  }

  void operator()() { node_->deliver(); }

private:
  op_node* node_;
};

template <typename Executor>
class op_node_impl final : public op_node
{
public:
  using allocator_type = asio::recycling_allocator<op_node_impl>;

  op_node_impl(source_state* src, Executor ex, emit_serializer* serial) noexcept
    : op_node(src), executor_(std::move(ex)), serial_(serial)
  {
    if (serial_)
      serial_->add_ref();
  }

  static op_node_impl* create(source_state* src, Executor ex, emit_serializer* serial = nullptr)
  {
    allocator_type alloc;
    op_node_impl* p = alloc.allocate(1);
    return ::new (p) op_node_impl(src, std::move(ex), serial);
  }

private:
  ~op_node_impl()
  {
    if (serial_)
      serial_->release();
  }

  bool has_executor() const noexcept
  {
    if constexpr (std::is_same_v<Executor, no_executor>)
      return false;
    else if constexpr (std::is_same_v<Executor, asio::any_io_executor>)
      return static_cast<bool>(executor_);
    else
      return true;
  }

  void schedule(bool never_inline) override
  {
    if (serial_)
      serial_->submit(this, never_inline);
    else if (!has_executor())
      deliver();
    else if constexpr (!std::is_same_v<Executor, no_executor>)
    {
      if (!never_inline && running_here(executor_))
        deliver();
      else
        asio::post(executor_, node_emitter(this));
    }
  }

  void destroy() noexcept override
  {
    allocator_type alloc;
    this->~op_node_impl();
    alloc.deallocate(this, 1);
  }

  Executor executor_;
  emit_serializer* serial_;
};

// Reads the reason of the request a node is delivering (see reason_view).
class node_view
{
public:
  explicit node_view(const op_node* n) noexcept : node_(n) {}
  const cancel_reason& reason() const noexcept { return node_->current_reason(); }

private:
  const op_node* node_;
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

  void explain_completion(const cancel_reason& r) noexcept
  {
    if (node_)
      node_->explain_completion(r);
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
