// arc: Asio Reasoned Cancellation
#ifndef ARC_DETAIL_SOURCE_STATE_HPP
#define ARC_DETAIL_SOURCE_STATE_HPP

#include <arc/cancel_reason.hpp>
#include <arc/detail/handler_storage.hpp>
#include <arc/detail/spin_lock.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/recycling_allocator.hpp>

#include <atomic>
#include <cstddef>
#include <mutex>
#include <optional>
#include <vector>

namespace arc::detail {

class source_state;
class op_node;

// The task whose code runs on this thread right now, or null. Set by the
// task executor (task_executor.hpp); defined in src/co_spawn.cpp so that there
// is one variable per program.
source_state*& current_task() noexcept;

// Something a source notifies when it is cancelled: an operation's node or a
// child source. Linked into the source under its mutex.
class cancel_node
{
public:
  // Called without the source's mutex held, from whichever thread cancels.
  virtual void notify(const cancel_reason& r, asio::cancellation_type_t t) = 0;
  // Take a reference only if the node is not already being destroyed.
  virtual bool try_add_ref() noexcept = 0;
  virtual void release() noexcept = 0;

  cancel_node* prev_ = nullptr;
  cancel_node* next_ = nullptr;
  bool linked_ = false;

protected:
  ~cancel_node() = default;
};

inline bool try_add_ref(std::atomic<std::size_t>& refs) noexcept
{
  std::size_t n = refs.load(std::memory_order_relaxed);
  while (n != 0)
    if (refs.compare_exchange_weak(n, n + 1, std::memory_order_relaxed))
      return true;
  return false;
}

// The shared state behind cancel_source handles.
class source_state
{
public:
  explicit source_state(std::size_t history_limit,
      std::optional<asio::any_io_executor> ex = std::nullopt)
    : history_limit_(history_limit ? history_limit : 1), executor_(std::move(ex))
  {
  }

  source_state(const source_state&) = delete;
  source_state& operator=(const source_state&) = delete;

  // States come from Asio's recycling allocator: cached per thread inside
  // run(), as Asio's own handler memory is.
  static source_state* create(std::size_t history_limit,
      std::optional<asio::any_io_executor> ex = std::nullopt);

  void add_ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept
  {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1)
      destroy(this);
  }

  bool cancelled() const noexcept { return cancelled_.load(std::memory_order_acquire); }

  // Valid once cancelled() is true: the first reason is written once, before
  // cancelled_ is published, and never again.
  const cancel_reason& first_reason() const noexcept { return reason_; }

  cancel_reason reason() const noexcept
  {
    return cancelled() ? reason_ : cancel_reason();
  }

  std::size_t requests() const noexcept { return requests_.load(std::memory_order_acquire); }

  std::vector<cancel_reason> history() const;

  // Record the request and notify every linked node. Returns true if this
  // request was the first.
  bool cancel(cancel_reason r, asio::cancellation_type_t t);

  // Link @p n. If the source is already cancelled, returns its first reason
  // so that the caller can deliver it (level-triggered).
  cancel_reason link(cancel_node* n);
  void unlink(cancel_node* n) noexcept;

  // Make a child whose cancellation follows this source's: as `parent` of
  // this source's reason, or, for a scope inside the same task, unchanged.
  source_state* make_child(std::size_t history_limit, bool as_parent = true);

  const std::optional<asio::any_io_executor>& executor() const noexcept { return executor_; }

  // For a task's source (see task_executor): the node binding the coroutine,
  // whose gate opens when the coroutine first runs, and whether it has.
  op_node* gate_node_ = nullptr;
  std::atomic<bool> started_{false};

private:
  class child_link final : public cancel_node
  {
  public:
    child_link(source_state* child, bool as_parent) noexcept
      : child_(child), as_parent_(as_parent)
    {
    }
    void notify(const cancel_reason& r, asio::cancellation_type_t t) override;
    bool try_add_ref() noexcept override { return detail::try_add_ref(child_->refs_); }
    void release() noexcept override { child_->release(); }

  private:
    source_state* child_;
    bool as_parent_;
  };

  static void destroy(source_state* s) noexcept;

  std::atomic<std::size_t> refs_{1};
  // Held only to link, unlink and snapshot nodes: never while arc calls out.
  mutable spin_lock mutex_;
  std::atomic<bool> cancelled_{false};
  std::atomic<std::size_t> requests_{0};
  cancel_reason reason_;
  // Requests after the first; the first is reason_. A ring once it is full.
  std::vector<cancel_reason> history_;
  std::size_t history_limit_;
  std::size_t history_next_ = 0;
  cancel_node* head_ = nullptr;
  std::optional<asio::any_io_executor> executor_;
  source_state* parent_ = nullptr; // strong reference
  std::optional<child_link> in_parent_;
};

// The node an operation's cancellation handler lives in. One per operation,
// so two operations never share a handler (Asio's slots allow only one).
class op_node : public cancel_node
{
public:
  explicit op_node(source_state* src) noexcept : source_(src)
  {
    if (source_)
      source_->add_ref();
  }

  bool try_add_ref() noexcept override { return detail::try_add_ref(refs_); }
  void add_ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept override
  {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1)
      destroy();
  }

  // Runs on the operation's executor (or the emitting slot's thread).
  void emit(const cancel_reason& r, asio::cancellation_type_t t)
  {
    std::lock_guard lock(lock_);
    if (!armed_)
      return;
    if (!handler_.has_handler() || gate_ == gate::closed)
    {
      // Level-triggered: keep it for the handler the operation installs next.
      pending_ = t;
      reason_ = r;
      return;
    }
    reason_ = r;
    handler_.call(t);
  }

  template <typename Handler, typename... Args>
  Handler& emplace(Args&&... args)
  {
    std::lock_guard lock(lock_);
    Handler& h = handler_.template emplace<Handler>(std::forward<Args>(args)...);
    if (pending_ != asio::cancellation_type::none && gate_ != gate::closed && can_post())
    {
      // Never inside the initiating function: post it.
      const auto t = std::exchange(pending_, asio::cancellation_type::none);
      post_emit(reason_, t);
    }
    return h;
  }

  void clear() noexcept
  {
    std::lock_guard lock(lock_);
    handler_.clear();
  }

  bool has_handler() noexcept
  {
    std::lock_guard lock(lock_);
    return handler_.has_handler();
  }

  // Read only by the node's own operation: inside its cancellation handler
  // (under emit) or after disarm().
  const cancel_reason& reason() const noexcept { return reason_; }

  void note_reason(const cancel_reason& r) noexcept
  {
    std::lock_guard lock(lock_);
    reason_ = r;
  }

  // The operation completed (or its handler was destroyed): drop the handler
  // so that no later emit reaches it, and leave the source.
  void disarm() noexcept
  {
    {
      std::lock_guard lock(lock_);
      armed_ = false;
      pending_ = asio::cancellation_type::none;
      handler_.clear();
    }
    if (source_)
    {
      if (gate_ != gate::none && source_->gate_node_ == this)
        source_->gate_node_ = nullptr;
      if (linked_)
        source_->unlink(this);
    }
  }

  // Link into the source; deliver its reason if it is already cancelled.
  void link()
  {
    if (!source_)
      return;
    if (cancel_reason r = source_->link(this))
    {
      std::lock_guard lock(lock_);
      pending_ = asio::cancellation_type::terminal;
      reason_ = std::move(r);
    }
  }

  source_state* source() const noexcept { return source_; }

  // The node that binds a coroutine to its task is gated. Boost 1.81's
  // co_spawn entry point co_awaits outside its try block before the body
  // starts; a cancellation state set then would escape run(). So emits wait
  // while the gate is closed, and are posted when the task executor opens it
  // on the coroutine's first run (see task_invoker).
  void make_gated() noexcept { gate_ = gate::closed; }

  void open_gate()
  {
    std::lock_guard lock(lock_);
    gate_ = gate::open;
    if (armed_ && pending_ != asio::cancellation_type::none && handler_.has_handler() && can_post())
      post_emit(reason_, std::exchange(pending_, asio::cancellation_type::none));
  }

  // A task cancelling itself while its body runs must not set the coroutine's
  // cancellation state synchronously: the entry point also co_awaits outside
  // its try block after a body that never suspended. Post instead.
  bool must_post_from_here() const noexcept
  {
    return gate_ != gate::none && current_task() == source_;
  }

  // Copies of a cancel_source::slot_type; the last one disarms the node.
  void add_slot_ref() noexcept { slot_refs_.fetch_add(1, std::memory_order_relaxed); }
  bool release_slot_ref() noexcept
  {
    return slot_refs_.fetch_sub(1, std::memory_order_acq_rel) == 1;
  }

  // For nodes without an executor: deliver a pending emit now. Called by the
  // initiating function once the operation's own initiation has returned.
  void flush_pending()
  {
    std::unique_lock lock(lock_);
    if (pending_ == asio::cancellation_type::none || !handler_.has_handler())
      return;
    const auto t = std::exchange(pending_, asio::cancellation_type::none);
    lock.unlock();
    emit(cancel_reason(reason_), t);
  }

protected:
  ~op_node()
  {
    if (source_)
    {
      // Only the owner links and unlinks, so linked_ is stable here.
      if (linked_)
        source_->unlink(this);
      source_->release();
    }
  }

  // Deliver an emit later, on the operation's executor, if there is one.
  virtual bool can_post() const noexcept = 0;
  virtual void post_emit(const cancel_reason& r, asio::cancellation_type_t t) = 0;
  virtual void destroy() noexcept = 0;

  std::atomic<std::size_t> refs_{1};
  std::atomic<std::size_t> slot_refs_{0};
  spin_lock lock_;
  handler_storage handler_;
  cancel_reason reason_;
  asio::cancellation_type_t pending_ = asio::cancellation_type::none;
  enum class gate : unsigned char { none, closed, open } gate_ = gate::none;
  bool armed_ = true;
  source_state* source_;
};

} // namespace arc::detail

#endif
