// arc: Asio Reasoned Cancellation
#include <arc/cancel_guard.hpp>

#include <boost/system/system_error.hpp>

namespace arc {

bool cancel_guard::request(boost::asio::cancellation_type_t type, const cancel_reason& r,
    std::source_location where)
{
  if ((type & force) != boost::asio::cancellation_type::none)
  {
    passed_ = true;
    out_.emit(r ? r : reason::unspecified(), detail::without_force(type));
    return true;
  }
  if (++absorbed_ == policy_.after_requests)
  {
    --absorbed_; // this one is passed on, not absorbed
    escalate(r ? r : reason::unspecified(), where);
    return true;
  }
  return false;
}

void cancel_guard::escalate(const cancel_reason& cause, std::source_location where)
{
  passed_ = true;
  out_.emit(reason::escalated(cause, where), boost::asio::cancellation_type::terminal);
}

namespace this_task {

std::size_t uncancel()
{
  detail::task_state* t = detail::current_task();
  if (!t)
    throw boost::system::system_error(make_error_code(error::not_in_task), "arc::this_task::uncancel");
  // The task, and the scope the code runs in (a with_timeout body) if it is
  // not the task itself: the scope follows the task, request for request.
  detail::task_state* owner = t->owner();
  const std::size_t left = owner->uncancel();
  if (t != owner && t->cancelled())
    t->uncancel();
  if (left == 0)
  {
    // Not yet delivered to the coroutine: withdrawn with the request.
    t->gate_.withdraw();
    if (t != owner)
      owner->gate_.withdraw();
  }
  return left;
}

} // namespace this_task
} // namespace arc
