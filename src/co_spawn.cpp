// arc: Asio Reasoned Cancellation
#include <arc/co_spawn.hpp>
#include <arc/error.hpp>

#include <boost/system/system_error.hpp>

namespace arc {
namespace detail {

task_state::task_state(std::size_t history_limit, task_state* owner) noexcept
  : emit_serializer(history_limit), owner_(owner)
{
  if (owner_)
    owner_->add_ref();
}

task_state::~task_state()
{
  if (owner_)
    owner_->release();
}

bool task_state::submit_or_queue(op_node* n, bool may_run_here)
{
  if (may_run_here && try_acquire())
  {
    // The common case: on the task's executor, the task idle. Deliver now.
    std::exception_ptr error;
    {
      task_hold hold(this);
      try
      {
        n->deliver();
      }
      catch (...)
      {
        error = std::current_exception();
      }
      release_and_deliver(error);
    }
    if (error)
      std::rethrow_exception(error);
    return false;
  }

  if (!n->serial_queued_.exchange(true, std::memory_order_acq_rel))
  {
    // The queue owns one reference to each node in it.
    n->add_ref();
    std::uintptr_t s = state_.load(std::memory_order_relaxed);
    do
      n->serial_next_ = reinterpret_cast<op_node*>(s & ~held_bit);
    while (!state_.compare_exchange_weak(s, reinterpret_cast<std::uintptr_t>(n) | (s & held_bit),
        std::memory_order_release, std::memory_order_relaxed));
  }
  // Else it is queued already: its delivery takes whatever is pending then.

  if (held_task() == this)
    return false; // delivered when this thread lets go of the task

  if (may_run_here)
  {
    // The holder may have let go before the node was queued: try again.
    if (try_acquire())
    {
      std::exception_ptr error;
      {
        task_hold hold(this);
        release_and_deliver(error);
      }
      if (error)
        std::rethrow_exception(error);
    }
    // Else the holder delivers it when it lets go.
    return false;
  }
  return true;
}

void task_state::deliver_posted()
{
  if (!try_acquire())
    return; // the holder delivers it when it lets go
  std::exception_ptr error;
  {
    task_hold hold(this);
    release_and_deliver(error);
  }
  if (error)
    std::rethrow_exception(error);
}

void task_state::drop_queued() noexcept
{
  std::uintptr_t s = state_.load(std::memory_order_acquire);
  // Held: the holder delivers the queue when it lets go.
  while ((s & ~held_bit) != 0 && !(s & held_bit))
    if (state_.compare_exchange_weak(s, 0, std::memory_order_acquire, std::memory_order_relaxed))
    {
      auto* list = reinterpret_cast<op_node*>(s);
      while (list)
      {
        op_node* n = list;
        list = n->serial_next_;
        n->serial_queued_.store(false, std::memory_order_release);
        n->release();
      }
      return;
    }
}

void task_state::release_and_deliver(std::exception_ptr& error) noexcept
{
  for (;;)
  {
    std::uintptr_t s = held_bit;
    // Let go if nothing was queued; a node queued meanwhile makes this fail.
    if (state_.compare_exchange_strong(s, 0, std::memory_order_release,
            std::memory_order_relaxed))
      return;
    // Take the queue, still holding the task, and deliver it.
    auto* list = reinterpret_cast<op_node*>(
        state_.exchange(held_bit, std::memory_order_acquire) & ~held_bit);
    while (list)
    {
      op_node* n = list;
      list = n->serial_next_;
      n->serial_queued_.store(false, std::memory_order_release);
      try
      {
        n->deliver();
      }
      catch (...)
      {
        if (!error)
          error = std::current_exception();
      }
      n->release();
    }
  }
}

} // namespace detail

namespace this_task {

bool in_task() noexcept { return detail::current_task() != nullptr; }

cancel_reason reason() noexcept
{
  auto* t = detail::current_task();
  return t ? t->reason() : cancel_reason();
}

bool cancelled() noexcept
{
  auto* t = detail::current_task();
  return t && t->cancelled();
}

std::size_t requests() noexcept
{
  auto* t = detail::current_task();
  return t ? t->requests() : 0;
}

cancel_source source()
{
  auto* t = detail::current_task();
  if (!t)
    throw boost::system::system_error(make_error_code(error::not_in_task),
        "arc::this_task::source");
  // A scope (with_timeout's body) belongs to its task: the task's source.
  detail::source_state* s = t->owner();
  s->add_ref();
  return cancel_source(s);
}

} // namespace this_task
} // namespace arc
