// arc: Asio Reasoned Cancellation
#include <arc/cancel_source.hpp>
#include <arc/error.hpp>

#include <boost/system/system_error.hpp>

#include <array>

namespace arc {
namespace detail {

std::vector<cancel_reason> source_state::history() const
{
  std::lock_guard lock(mutex_);
  std::vector<cancel_reason> out;
  if (!cancelled_.load(std::memory_order_relaxed))
    return out;
  // The first request is reason_; later ones are in the ring, whose oldest
  // entry is history_next_ once it is full. Keep the most recent limit.
  const std::size_t later = history_.size();
  const std::size_t total = later + 1;
  const std::size_t skip = total > history_limit_ ? total - history_limit_ : 0;
  out.reserve(total - skip);
  if (skip == 0)
    out.push_back(reason_);
  const std::size_t first_later = skip == 0 ? 0 : skip - 1;
  for (std::size_t i = first_later; i < later; ++i)
    out.push_back(history_[(history_next_ + i) % later]);
  return out;
}

bool source_state::cancel(cancel_reason r, asio::cancellation_type_t t)
{
  if (!r)
    r = reason::unspecified();

  // Nodes to notify once the mutex is released: a cancellation handler may
  // run inline and must be free to call back into this source.
  std::array<cancel_node*, 8> small;
  std::vector<cancel_node*> large;
  std::size_t count = 0;
  bool first = false;
  cancel_reason effective;
  {
    std::lock_guard lock(mutex_);
    requests_.fetch_add(1, std::memory_order_release);
    if (!cancelled_.load(std::memory_order_relaxed))
    {
      // The first request allocates nothing: it is reason_.
      reason_ = std::move(r);
      cancelled_.store(true, std::memory_order_release);
      first = true;
    }
    else if (history_.size() < history_limit_)
      history_.push_back(std::move(r));
    else
    {
      history_[history_next_] = std::move(r);
      history_next_ = (history_next_ + 1) % history_limit_;
    }
    effective = reason_;
    for (cancel_node* n = head_; n; n = n->next_)
    {
      if (!n->try_add_ref())
        continue; // being destroyed; it unlinks itself
      if (count < small.size())
        small[count] = n;
      else
        large.push_back(n);
      ++count;
    }
  }
  for (std::size_t i = 0; i < count; ++i)
  {
    cancel_node* n = i < small.size() ? small[i] : large[i - small.size()];
    n->notify(effective, t);
    n->release();
  }
  return first;
}

cancel_reason source_state::link(cancel_node* n)
{
  std::lock_guard lock(mutex_);
  n->prev_ = nullptr;
  n->next_ = head_;
  if (head_)
    head_->prev_ = n;
  head_ = n;
  n->linked_ = true;
  return cancelled_.load(std::memory_order_relaxed) ? reason_ : cancel_reason();
}

void source_state::unlink(cancel_node* n) noexcept
{
  std::lock_guard lock(mutex_);
  if (!n->linked_)
    return;
  if (n->prev_)
    n->prev_->next_ = n->next_;
  else
    head_ = n->next_;
  if (n->next_)
    n->next_->prev_ = n->prev_;
  n->prev_ = n->next_ = nullptr;
  n->linked_ = false;
}

source_state* source_state::make_child(std::size_t history_limit, bool as_parent)
{
  auto* child = create(history_limit, executor_);
  add_ref();
  child->parent_ = this;
  child->in_parent_.emplace(child, as_parent);
  if (cancel_reason r = link(&*child->in_parent_))
    child->cancel(as_parent ? reason::parent(std::move(r)) : std::move(r),
        asio::cancellation_type::terminal);
  return child;
}

void source_state::child_link::notify(const cancel_reason& r, asio::cancellation_type_t t)
{
  child_->cancel(as_parent_ ? reason::parent(r) : r, t);
}

source_state* source_state::create(std::size_t history_limit,
    std::optional<asio::any_io_executor> ex)
{
  asio::recycling_allocator<source_state> alloc;
  source_state* p = alloc.allocate(1);
  try
  {
    return ::new (p) source_state(history_limit, std::move(ex));
  }
  catch (...)
  {
    alloc.deallocate(p, 1);
    throw;
  }
}

void source_state::destroy(source_state* s) noexcept
{
  source_state* parent = s->parent_;
  if (parent)
    parent->unlink(&*s->in_parent_);
  s->~source_state();
  asio::recycling_allocator<source_state>().deallocate(s, 1);
  if (parent)
    parent->release();
}

} // namespace detail

cancel_source::cancel_source() : cancel_source(cancel_source_options{}) {}

cancel_source::cancel_source(cancel_source_options opts)
  : state_(detail::source_state::create(opts.history_limit))
{
}

bool cancel_source::cancel(std::source_location where)
{
  return cancel(reason::user({}, where));
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
  return cancel_source(state_->make_child(cancel_source_options{}.history_limit));
}

cancel_source::slot_type cancel_source::slot() const
{
  if (!has_executor())
    throw boost::system::system_error(make_error_code(error::no_executor),
        "arc::cancel_source::slot");
  auto* node = detail::op_node_impl<boost::asio::any_io_executor>::create(
      state_, *state_->executor());
  node->add_slot_ref();
  node->link();
  return slot_type(node);
}

cancel_source::slot_type::slot_type(const slot_type& other) noexcept : slot_(other.slot_)
{
  if (auto* n = slot_.node())
  {
    n->add_ref();
    n->add_slot_ref();
  }
}

cancel_source::slot_type::slot_type(slot_type&& other) noexcept : slot_(other.slot_)
{
  other.slot_ = detail::node_slot();
}

cancel_source::slot_type& cancel_source::slot_type::operator=(slot_type other) noexcept
{
  std::swap(slot_, other.slot_);
  return *this;
}

cancel_source::slot_type::~slot_type()
{
  if (auto* n = slot_.node())
  {
    // The last copy is gone with the operation's handler: make sure no later
    // emit reaches the handler the operation left installed.
    if (n->release_slot_ref())
      n->disarm();
    n->release();
  }
}

} // namespace arc
