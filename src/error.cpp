// arc: Asio Reasoned Cancellation
#include <arc/error.hpp>

#include <boost/asio/error.hpp>
#include <boost/system/errc.hpp>

#include <string>

namespace arc {
namespace {

class arc_category final : public boost::system::error_category
{
public:
  // A fixed id keeps categories from different shared objects equal.
  constexpr arc_category() noexcept : error_category(0xa5c0'7a11'ca9c'e101ULL) {}

  const char* name() const noexcept override { return "arc"; }

  std::string message(int ev) const override
  {
    switch (static_cast<error>(ev))
    {
    case error::cancelled: return "cancelled";
    case error::timed_out: return "timed out";
    case error::shutdown: return "cancelled by shutdown";
    case error::signalled: return "cancelled by a signal";
    case error::parent_cancelled: return "cancelled by its parent";
    case error::shield_deadline_exceeded: return "shielded work exceeded its deadline";
    case error::escalated: return "cancellation escalated";
    case error::cancel_ignored: return "the target ignored the cancellation";
    case error::group_closed: return "the group is closed";
    case error::already_started: return "already started";
    case error::not_in_task: return "not inside an arc task";
    case error::no_executor: return "no executor was given";
    case error::shutdown_incomplete: return "shutdown incomplete: tasks still running";
    case error::not_cancelled: return "not cancelled: no request left to withdraw";
    case error::already_finished: return "the target had already finished";
    case error::context_destroyed: return "the executor's execution context has been destroyed";
    }
    return "unknown arc error";
  }

  boost::system::error_condition default_error_condition(int ev) const noexcept override
  {
    if (ev >= static_cast<int>(error::cancelled) && ev <= static_cast<int>(error::escalated))
      return boost::system::errc::make_error_condition(boost::system::errc::operation_canceled);
    return {ev, *this};
  }
};

constinit const arc_category category;

} // namespace

const boost::system::error_category& error_category() noexcept { return category; }

boost::system::error_code make_error_code(error e) noexcept
{
  return {static_cast<int>(e), category};
}

bool is_cancellation(const boost::system::error_code& ec) noexcept
{
  return ec == boost::system::errc::operation_canceled
    || ec == boost::asio::error::operation_aborted;
}

cancelled_error::cancelled_error(cancel_reason r)
  : cancelled_error(r ? r.code() : make_error_code(error::cancelled), r)
{
}

cancelled_error::cancelled_error(boost::system::error_code ec, cancel_reason r)
  : boost::system::system_error(ec), reason_(std::move(r))
{
}

cancelled_error::cancelled_error(const cancelled_error& other)
  : boost::system::system_error(other), reason_(other.reason_)
{
}

cancelled_error& cancelled_error::operator=(const cancelled_error& other)
{
  if (this != &other)
  {
    cancelled_error copy(other);
    boost::system::system_error::operator=(copy);
    reason_ = copy.reason_;
    what_once_.~once_flag();
    ::new (&what_once_) std::once_flag();
    what_.clear();
  }
  return *this;
}

cancelled_error::~cancelled_error() = default;

const char* cancelled_error::what() const noexcept
{
  try
  {
    std::call_once(what_once_, [this] {
      what_ = to_string(reason_);
      what_ += ": ";
      what_ += boost::system::system_error::what();
    });
    return what_.c_str();
  }
  catch (...)
  {
    return boost::system::system_error::what();
  }
}

} // namespace arc
