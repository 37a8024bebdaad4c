// arc: Asio Reasoned Cancellation
#include <arc/shield.hpp>

#include <arc/detail/registry_core.hpp>

#include <boost/asio/execution/context.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/query.hpp>

namespace arc::detail {

shield_record::shield_record(std::string name, std::source_location where,
    std::chrono::steady_clock::time_point deadline,
    std::function<void(std::exception_ptr)> on_done, const asio::any_io_executor& ex)
  : name_(std::move(name)), where_(where), start_(std::chrono::steady_clock::now()),
    deadline_(deadline), on_done_(std::move(on_done)),
    body_(task_ref::adopt(task_state_impl<asio::any_io_executor>::create(
        cancel_source_options{}.history_limit, asio::any_io_executor(ex), nullptr))),
    done_(ex),
    work_(asio::prefer(ex, asio::execution::outstanding_work.tracked)),
    core_(registry_core_of(asio::query(ex, asio::execution::context)))
{
  id_ = core_->add_shield(this);
  if (deadline_ != std::chrono::steady_clock::time_point::max())
    body_->arm_deadline(deadline_, reason::shield_deadline(deadline_, where_),
        std::chrono::steady_clock::duration{}, where_);
}

shield_record::~shield_record() = default;

shield_info shield_record::info() const
{
  shield_info i;
  i.id = id_;
  i.name = name_;
  i.where = where_;
  i.age = std::chrono::steady_clock::now() - start_;
  i.deadline = deadline_;
  i.status = finished_.load(std::memory_order_acquire) ? shield_status::done : shield_status::running;
  i.forced = forced();
  i.detached = detached_.load(std::memory_order_acquire);
  return i;
}

bool shield_record::forced() const noexcept
{
  task_state* b = body_.get();
  return b->cancelled() && b->first_reason().kind() == reason_kind::shield_deadline;
}

void shield_record::finish(std::exception_ptr error, bool abandoned) noexcept
{
  error_ = error;
  finished_.store(true, std::memory_order_release);
  if (abandoned)
  {
    // The io_context destroys the work's frame without running it: say so,
    // as a group's child does.
    task_info t;
    t.id = id_;
    t.name = name_;
    t.group = "(shield)";
    t.where = where_;
    t.age = std::chrono::steady_clock::now() - start_;
    t.requests = body_->requests();
    t.reason = body_->reason();
    core_->abandoned(t);
  }
  core_->remove_shield(this);
  work_ = asio::any_io_executor();
  // Abandoned: whoever waits is being destroyed with the context too.
  if (abandoned)
    return;
  done_.cancel(reason::user("shield done"));
  if (on_done_)
  {
    try
    {
      on_done_(error);
    }
    catch (...)
    {
      // Called from the work's completion, which has nowhere to send it.
    }
    return;
  }
  if (phase_.exchange(finished, std::memory_order_acq_rel) == left && error)
    report_unobserved(error);
}

void shield_record::leave() noexcept
{
  detached_.store(true, std::memory_order_release);
  if (phase_.exchange(left, std::memory_order_acq_rel) == finished && error_ && !on_done_)
    report_unobserved(error_);
}

void shield_record::report_unobserved(std::exception_ptr e) noexcept
{
  core_->shield_failed(std::move(e), info());
}

} // namespace arc::detail
