// arc: Asio Reasoned Cancellation
#include <arc/cancel_source.hpp>
#include <arc/detail/reason_rep.hpp>
#include <arc/error.hpp>

#include <boost/asio/steady_timer.hpp>

#include <boost/system/system_error.hpp>

#include <mutex>
#include <optional>

namespace arc {
namespace detail {

namespace {

class as_parent_link final : public link_policy
{
public:
  void forward(source_state& child, const cancel_reason& r,
      asio::cancellation_type_t t) const override
  {
    child.cancel(reason::parent(r), t);
  }
};

class unchanged_link final : public link_policy
{
public:
  void forward(source_state& child, const cancel_reason& r,
      asio::cancellation_type_t t) const override
  {
    child.cancel(r, t);
  }
};

// This thread's delivery in progress: sources whose requests were recorded
// from inside it, waiting to be delivered by the outermost cancel().
// Deliveries nest (a child link cancels its child, a cancellation handler
// cancels another source) up to this depth by recursion; deeper ones are
// queued and delivered by the outermost cancel() on the thread.
constexpr unsigned max_nested_delivery = 16;

struct delivery
{
  unsigned depth = 0;
  std::vector<source_state*> queue; // each holds a reference
  std::exception_ptr error;         // the first exception a node threw
};

delivery& this_thread_delivery() noexcept
{
  thread_local delivery d;
  return d;
}

} // namespace

const link_policy& as_parent_policy() noexcept
{
  static const as_parent_link p;
  return p;
}

const link_policy& unchanged_policy() noexcept
{
  static const unchanged_link p;
  return p;
}

source_state::source_state(std::size_t history_limit)
  : history_limit_(history_limit ? history_limit : 1)
{
}


source_state::~source_state()
{
  drop_deadlines(deadlines_);
}

asio::cancellation_type_t source_state::types() const noexcept
{
  std::lock_guard lock(mutex_);
  return types_;
}

std::vector<cancel_reason> source_state::history() const
{
  std::vector<cancel_reason> out;
  out.reserve(history_limit_);
  std::lock_guard lock(mutex_);
  const std::size_t total = requests_.load(std::memory_order_relaxed);
  if (total == 0)
    return out;
  // The first request is reason_; later ones are in the ring. Keep the most
  // recent history_limit_.
  const std::size_t from = total > history_limit_ ? total - history_limit_ + 1 : 1;
  for (std::size_t seq = from; seq <= total; ++seq)
    out.push_back(seq == 1 ? reason_ : ring_[(seq - 2) % history_limit_].reason);
  return out;
}

source_state::request source_state::request_at(std::size_t seq) const
{
  if (seq == 1)
    return {reason_, first_type_};
  const std::size_t total = requests_.load(std::memory_order_relaxed);
  if (total - seq < history_limit_)
    return ring_[(seq - 2) % history_limit_];
  // Overwritten before it could be delivered (more than history_limit
  // requests during one delivery): it is counted, and delivered as the first.
  return {reason_, first_type_};
}

bool source_state::cancel(cancel_reason r, asio::cancellation_type_t t)
{
  if (!r)
    r = reason::unspecified();

  bool first = false;
  bool deliver = false;
  source_deadline* deadlines = nullptr; // dropped after the lock is released
  request overwritten; // destroyed after the lock is released
  std::unique_ptr<request[]> ring;
  for (;;)
  {
    // The ring is allocated outside the lock, by the first later request.
    if (!ring && requests_.load(std::memory_order_acquire) != 0
        && !has_ring_.load(std::memory_order_acquire))
      ring.reset(new request[history_limit_]);
    std::lock_guard lock(mutex_);
    const std::size_t seq = requests_.load(std::memory_order_relaxed) + 1;
    if (seq > 1 && !ring_ && !ring)
      continue; // raced with the first request: allocate, unlocked, and retry
    types_ |= t;
    if (seq == 1)
    {
      reason_ = std::move(r);
      first_type_ = t;
      cancelled_.store(true, std::memory_order_release);
      first = true;
      deadlines = std::exchange(deadlines_, nullptr);
    }
    else
    {
      // Withdrawn by uncancel(): cancelled again, the first reason unchanged.
      if (!cancelled_.load(std::memory_order_relaxed))
        cancelled_.store(true, std::memory_order_release);
      if (!ring_)
      {
        ring_ = std::move(ring);
        has_ring_.store(true, std::memory_order_release);
      }
      request& slot = ring_[(seq - 2) % history_limit_];
      overwritten = std::move(slot);
      slot = request{std::move(r), t};
    }
    requests_.store(seq, std::memory_order_release);
    deliver = !walking_ && head_ != nullptr;
    break;
  }
  // Cancelled: a deadline has nothing left to do.
  drop_deadlines(deadlines);
  if (!deliver)
    return first; // nobody to tell, or the walker delivers it

  delivery& d = this_thread_delivery();
  if (d.depth >= max_nested_delivery)
  {
    // Deep inside deliveries on this thread: queue instead of recursing.
    add_ref();
    try
    {
      d.queue.push_back(this);
      return first;
    }
    catch (...)
    {
      release(); // could not queue: deliver now, recursing once more
    }
  }

  struct end_delivery
  {
    delivery& d;
    ~end_delivery() { --d.depth; }
  } guard{d};
  const bool outermost = d.depth++ == 0;
  walk(d.error);
  if (!outermost)
    return first;
  while (!d.queue.empty())
  {
    source_state* s = d.queue.back();
    d.queue.pop_back();
    s->walk(d.error);
    s->release();
  }
  if (auto e = std::exchange(d.error, nullptr))
    std::rethrow_exception(e);
  return first;
}

void source_state::walk(std::exception_ptr& error) noexcept
{
  std::unique_lock lock(mutex_);
  if (walking_)
    return;
  walking_ = true;
  while (delivered_ < requests_.load(std::memory_order_relaxed))
  {
    const std::size_t seq = delivered_ + 1;
    request req = request_at(seq);
    const asio::cancellation_type_t all = types_;
    cursor_ = head_;
    while (cursor_)
    {
      cancel_node* n = cursor_;
      cursor_ = n->next_;
      if (n->seen_ >= seq || !n->try_add_ref())
        continue; // already has it, or is being destroyed (it unlinks itself)
      n->seen_ = seq;
      lock.unlock();
      try
      {
        n->notify(req.reason, req.type, all);
      }
      catch (...)
      {
        if (!error)
          error = std::current_exception();
      }
      n->release();
      lock.lock();
    }
    delivered_ = seq;
    // A later request may have overwritten req's ring entry meanwhile: then
    // req holds the last reference, which is not dropped under the lock.
    lock.unlock();
    req = request{};
    lock.lock();
  }
  walking_ = false;
}

source_state::link_result source_state::link(cancel_node* n)
{
  std::lock_guard lock(mutex_);
  n->prev_ = nullptr;
  n->next_ = head_;
  if (head_)
    head_->prev_ = n;
  head_ = n;
  n->linked_ = true;
  const std::size_t seq = requests_.load(std::memory_order_relaxed);
  n->seen_ = seq;
  if (seq == 0 || !cancelled_.load(std::memory_order_relaxed))
    return {}; // never cancelled, or every request withdrawn
  return {reason_, types_};
}

std::size_t source_state::uncancel()
{
  std::lock_guard lock(mutex_);
  const std::size_t made = requests_.load(std::memory_order_relaxed);
  const std::size_t withdrawn = withdrawn_.load(std::memory_order_relaxed);
  if (made == withdrawn)
    throw boost::system::system_error(make_error_code(error::not_cancelled), "uncancel");
  withdrawn_.store(static_cast<std::uint32_t>(withdrawn + 1), std::memory_order_release);
  if (made == withdrawn + 1)
    cancelled_.store(false, std::memory_order_release);
  return made - withdrawn - 1;
}

void source_state::unlink(cancel_node* n) noexcept
{
  std::lock_guard lock(mutex_);
  if (!n->linked_)
    return;
  if (cursor_ == n)
    cursor_ = n->next_;
  if (n->prev_)
    n->prev_->next_ = n->next_;
  else
    head_ = n->next_;
  if (n->next_)
    n->next_->prev_ = n->prev_;
  n->prev_ = n->next_ = nullptr;
  n->linked_ = false;
}

source_state* source_state::make_child(std::size_t history_limit, const link_policy& policy)
{
  auto* child = has_executor() ? create(history_limit, executor()) : create(history_limit);
  try
  {
    attach_child(child, policy);
  }
  catch (...)
  {
    child->release();
    throw;
  }
  return child;
}

void source_state::attach_child(source_state* child, const link_policy& policy)
{
  asio::recycling_allocator<child_link> alloc;
  child_link* l = ::new (alloc.allocate(1)) child_link(child, policy);
  add_ref();
  child->parent_ = this;
  child->in_parent_ = l;
  if (link_result now = link(l); now.reason)
    policy.forward(*child, now.reason, now.types);
}

void source_state::child_link::notify(const cancel_reason& r, asio::cancellation_type_t t,
    asio::cancellation_type_t)
{
  policy_->forward(*child_, r, t);
}

namespace {

// A plain source made with an executor.
class executor_source_state final : public source_state
{
public:
  executor_source_state(std::size_t history_limit, asio::any_io_executor&& ex)
    : source_state(history_limit), executor_(std::move(ex))
  {
  }

  bool has_executor() const noexcept override { return static_cast<bool>(executor_); }
  asio::any_io_executor executor() const override { return executor_; }

private:
  ~executor_source_state() override = default;
  void destroy_self() noexcept override
  {
    this->~executor_source_state();
    asio::recycling_allocator<executor_source_state>().deallocate(this, 1);
  }

  asio::any_io_executor executor_;
};

template <typename State, typename... Args>
source_state* create_state(Args&&... args)
{
  asio::recycling_allocator<State> alloc;
  State* p = alloc.allocate(1);
  try
  {
    return ::new (p) State(std::forward<Args>(args)...);
  }
  catch (...)
  {
    alloc.deallocate(p, 1);
    throw;
  }
}

} // namespace

source_state* source_state::create(std::size_t history_limit)
{
  return create_state<source_state>(history_limit);
}

source_state* source_state::create(std::size_t history_limit, asio::any_io_executor&& ex)
{
  return create_state<executor_source_state>(history_limit, std::move(ex));
}

void source_state::destroy_self() noexcept
{
  this->~source_state();
  asio::recycling_allocator<source_state>().deallocate(this, 1);
}

void source_state::destroy_chain(source_state* s) noexcept
{
  // A chain held by its leaf is destroyed leaf first, one level per
  // iteration, not by recursion.
  while (s)
  {
    source_state* parent = s->parent_;
    if (parent)
    {
      parent->unlink(s->in_parent_);
      asio::recycling_allocator<child_link> alloc;
      s->in_parent_->~child_link();
      alloc.deallocate(s->in_parent_, 1);
    }
    s->destroy_self();
    s = parent && parent->refs_.release() ? parent : nullptr;
  }
}

// A deadline on a source: a timer on the source's executor that cancels it
// when due. The source owns one reference (its list) and knows it; the
// deadline knows the source only weakly (source_, cleared when the source is
// cancelled or destroyed). Every timer call is made under mutex_, so it may
// be made from any thread; the timer's handler is arc's, not user code.
class source_deadline final : public context_resident
{
public:
  source_deadline(source_state* src, const asio::any_io_executor& ex, cancel_reason r,
      std::chrono::steady_clock::duration after, std::source_location where,
      context_registry& registry)
    : source_(src), timer_(std::in_place, ex), reason_(std::move(r)), after_(after),
      where_(where), registry_(&registry)
  {
    registry_->add(this);
  }

  source_deadline(const source_deadline&) = delete;
  source_deadline& operator=(const source_deadline&) = delete;

  bool try_add_ref() noexcept override { return refs_.try_add(); }
  void add_ref() noexcept { refs_.add(); }
  void release() noexcept override
  {
    if (refs_.release())
      delete this;
  }

  void arm(std::chrono::steady_clock::time_point when)
  {
    std::lock_guard lock(mutex_);
    if (!source_ || !timer_)
      return; // cancelled, destroyed, or the context is gone already
    when_ = when;
    timer_->expires_at(when);
    timer_->async_wait(expiry(this));
  }

  // The source was cancelled or is being destroyed: the timer goes now.
  void source_done() noexcept
  {
    std::lock_guard lock(mutex_);
    source_ = nullptr;
    if (timer_)
      timer_->cancel();
  }

  void context_shutdown() noexcept override
  {
    std::lock_guard lock(mutex_);
    source_ = nullptr;
    context_gone_ = true;
    timer_.reset(); // an I/O object must not outlive its context
  }

  source_deadline* next_ = nullptr; // the source's list

private:
  // Owns a reference, so that a handler destroyed unrun (the context gone)
  // gives it back.
  class expiry
  {
  public:
    explicit expiry(source_deadline* d) noexcept : d_(d) { d_->add_ref(); }
    expiry(expiry&& o) noexcept : d_(std::exchange(o.d_, nullptr)) {}
    expiry& operator=(expiry&&) = delete;
    ~expiry()
    {
      if (d_)
        d_->release();
    }

    void operator()(const boost::system::error_code& ec)
    {
      if (!ec)
        d_->expired();
    }

  private:
    source_deadline* d_;
  };

  ~source_deadline()
  {
    bool gone;
    {
      std::lock_guard lock(mutex_);
      gone = context_gone_;
    }
    if (!gone)
      registry_->remove(this);
  }

  void expired()
  {
    source_state* src;
    std::chrono::steady_clock::time_point when;
    {
      std::lock_guard lock(mutex_);
      when = when_;
      src = source_;
      // The source may be on its way out: then it is not cancelled.
      if (src && !src->try_add_ref())
        src = nullptr;
    }
    if (!src)
      return;
    cancel_reason r = reason_ ? reason_ : expired_timeout(when, after_, where_);
    src->cancel(std::move(r), asio::cancellation_type::terminal);
    src->release();
  }

  ref_count refs_;
  std::mutex mutex_;
  source_state* source_;
  bool context_gone_ = false;
  std::optional<asio::steady_timer> timer_;
  const cancel_reason reason_;
  std::chrono::steady_clock::time_point when_; // guarded by mutex_
  const std::chrono::steady_clock::duration after_;
  const std::source_location where_;
  context_registry* registry_;
};

bool source_state::arm_deadline(std::chrono::steady_clock::time_point when, cancel_reason r,
    std::chrono::steady_clock::duration after, std::source_location where)
{
  if (!has_executor())
    throw boost::system::system_error(make_error_code(error::no_executor),
        "arc::cancel_source::cancel_after");
  const asio::any_io_executor ex = executor();
  auto& registry = asio::use_service<context_registry>(
      asio::query(ex, asio::execution::context));
  auto* d = new source_deadline(this, ex, std::move(r), after, where, registry);
  // One reference for the source's list, one held here until armed: a cancel
  // on another thread may drop the list's meanwhile.
  d->add_ref();
  bool linked = false;
  {
    std::lock_guard lock(mutex_);
    if (!cancelled())
    {
      d->next_ = deadlines_;
      deadlines_ = d;
      linked = true;
    }
  }
  if (linked)
    d->arm(when);
  else
    d->release(); // the list's
  d->release();
  return linked;
}

void source_state::drop_deadlines(source_deadline* list) noexcept
{
  while (list)
  {
    source_deadline* next = list->next_;
    list->source_done();
    list->release();
    list = next;
  }
}

void context_registry::add(context_resident* r) noexcept
{
  std::lock_guard lock(mutex_);
  r->registry_prev_ = nullptr;
  r->registry_next_ = head_;
  if (head_)
    head_->registry_prev_ = r;
  head_ = r;
  r->registered_ = true;
}

bool context_registry::remove(context_resident* r) noexcept
{
  std::lock_guard lock(mutex_);
  if (!r->registered_)
    return false;
  if (r->registry_prev_)
    r->registry_prev_->registry_next_ = r->registry_next_;
  else
    head_ = r->registry_next_;
  if (r->registry_next_)
    r->registry_next_->registry_prev_ = r->registry_prev_;
  r->registry_prev_ = r->registry_next_ = nullptr;
  r->registered_ = false;
  return true;
}

void context_registry::shutdown()
{
  // Take every resident, each with a reference (a cancel on another thread
  // may be finishing one), then shut them down with the lock released: a
  // handler's destructor is user code.
  std::vector<context_resident*> residents;
  {
    std::lock_guard lock(mutex_);
    for (context_resident* r = head_; r; r = r->registry_next_)
      if (r->try_add_ref())
        residents.push_back(r);
  }
  for (context_resident* r : residents)
  {
    remove(r);
    r->context_shutdown();
    r->release();
  }
}

} // namespace detail

cancel_source::cancel_source() : cancel_source(cancel_source_options{}) {}

cancel_source::cancel_source(cancel_source_options opts)
  : state_(detail::source_state::create(opts.history_limit))
{
}

bool cancel_source::cancel(std::source_location where)
{
  return state_ && state_->cancel(reason::user({}, where), boost::asio::cancellation_type::terminal);
}

bool cancel_source::cancel(cancel_reason reason, boost::asio::cancellation_type_t type)
{
  return state_ && state_->cancel(std::move(reason), type);
}

std::vector<cancel_reason> cancel_source::history() const
{
  return state_ ? state_->history() : std::vector<cancel_reason>();
}

cancel_source cancel_source::make_child() const
{
  // A moved-from source has no state: its child is a new, independent source.
  if (!state_)
    return cancel_source();
  return cancel_source(
      state_->make_child(cancel_source_options{}.history_limit, detail::as_parent_policy()));
}

bool cancel_source::cancel_after(std::chrono::steady_clock::duration after,
    std::source_location where)
{
  return state_
      && state_->arm_deadline(std::chrono::steady_clock::now() + after, {}, after, where);
}

bool cancel_source::cancel_after(std::chrono::steady_clock::duration after, cancel_reason reason)
{
  return state_
      && state_->arm_deadline(std::chrono::steady_clock::now() + after,
          reason ? std::move(reason) : reason::timeout(after), after, {});
}

bool cancel_source::cancel_at(std::chrono::steady_clock::time_point deadline,
    std::source_location where)
{
  return state_
      && state_->arm_deadline(deadline, {}, deadline - std::chrono::steady_clock::now(), where);
}

bool cancel_source::cancel_at(std::chrono::steady_clock::time_point deadline, cancel_reason reason)
{
  return state_
      && state_->arm_deadline(deadline, reason ? std::move(reason) : reason::timeout(deadline),
          {}, {});
}

cancel_source::slot_type cancel_source::make_slot() const
{
  if (!has_executor())
    throw boost::system::system_error(make_error_code(error::no_executor),
        "arc::cancel_source::slot");
  auto* node = detail::op_node_impl<boost::asio::any_io_executor>::create(
      state_, state_->executor());
  node->add_slot_ref();
  node->link();
  // No initiating function of arc's runs around the operation: the node
  // opens now, and a pending emit is posted to the source's executor.
  node->open();
  return slot_type(node);
}

cancel_source::slot_type::slot_type(const slot_type& other) : slot_(other.slot_)
{
  if (auto* n = slot_.node())
  {
    binding_ = other.binding_ ? other.binding_ : new binding{};
    if (other.binding_)
      binding_->refs.add();
    n->add_ref();
    n->add_slot_ref();
  }
}

cancel_source::slot_type::slot_type(slot_type&& other) : slot_(other.slot_)
{
  // Moving the make_slot() object itself (not a binding) starts a binding too.
  binding_ = other.binding_ || !slot_.node() ? std::exchange(other.binding_, nullptr)
                                             : new binding{};
  other.slot_ = detail::node_slot();
}

cancel_source::slot_type& cancel_source::slot_type::operator=(slot_type other) noexcept
{
  std::swap(slot_, other.slot_);
  std::swap(binding_, other.binding_);
  return *this;
}

void cancel_source::slot_type::drop() noexcept
{
  auto* n = slot_.node();
  if (!n)
    return;
  if (binding_ && binding_->refs.release())
  {
    n->owner_gone(binding_);
    delete binding_;
  }
  binding_ = nullptr;
  // The last copy is gone with the operation's handler: make sure no later
  // emit reaches the handler the operation left installed.
  if (n->release_slot_ref())
    n->disarm();
  n->release();
  slot_ = detail::node_slot();
}

cancel_source::slot_type::~slot_type() { drop(); }

} // namespace arc
