// arc: Asio Reasoned Cancellation
#include <arc/shield.hpp>

#include <arc/detail/registry_core.hpp>

#include <boost/asio/execution/context.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/query.hpp>

namespace arc::detail {

namespace {

// The reasons of arc's internal completion events: made once (a reason is an
// immutable, shared value), not per shield.
const cancel_reason& shield_done_reason()
{
  static const cancel_reason r = reason::user("shield done");
  return r;
}

const cancel_reason& scope_idle_reason()
{
  static const cancel_reason r = reason::user("shield executor idle");
  return r;
}

} // namespace

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
  done_.cancel(shield_done_reason());
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

namespace arc::detail {

// --- shield_scope: what a shield executor's copies share ------------------------

ref_ptr<shield_scope> shield_scope::make(std::string name, std::source_location where,
    std::optional<std::chrono::steady_clock::duration> deadline,
    std::optional<std::chrono::steady_clock::time_point> deadline_at,
    const asio::any_io_executor& ex)
{
  return ref_ptr<shield_scope>::adopt(
      new shield_scope(std::move(name), where, deadline, deadline_at, ex));
}

shield_scope::shield_scope(std::string name, std::source_location where,
    std::optional<std::chrono::steady_clock::duration> deadline,
    std::optional<std::chrono::steady_clock::time_point> deadline_at,
    const asio::any_io_executor& ex)
  : name_(std::move(name)), where_(where), start_(std::chrono::steady_clock::now()),
    deadline_(deadline), deadline_at_(deadline_at),
    core_(registry_core_of(asio::query(ex, asio::execution::context)))
{
  id_ = core_->add_scope(this);
}

shield_scope::~shield_scope()
{
  core_->remove_scope(this);
}

void shield_scope::check_alive() const
{
  if (core_->gone())
    throw boost::system::system_error(make_error_code(error::context_destroyed),
        "arc::shield_executor::execute");
}

std::chrono::steady_clock::time_point shield_scope::deadline_from_now() const noexcept
{
  return earliest_deadline(deadline_, deadline_at_);
}

shield_info shield_scope::info() const
{
  shield_info i;
  i.id = id_;
  i.name = name_;
  i.where = where_;
  i.age = std::chrono::steady_clock::now() - start_;
  i.deadline = deadline_at_.value_or(std::chrono::steady_clock::time_point::max());
  i.pending = pending();
  i.status = i.pending != 0 ? shield_status::running : shield_status::done;
  i.executor = true;
  return i;
}

void shield_scope::when_idle(cancel_source s)
{
  {
    std::lock_guard lock(mutex_);
    waiters_.push_back(s);
    has_waiters_.store(true, std::memory_order_seq_cst);
    if (pending_.load(std::memory_order_seq_cst) != 0)
      return; // became_idle() will see has_waiters_ and fire it
    waiters_.pop_back();
  }
  s.cancel(scope_idle_reason());
}

void shield_scope::became_idle() noexcept
{
  // pending_ reached zero: fire the waiters (outside the lock), then drop the
  // reference that outstanding work held.
  if (has_waiters_.load(std::memory_order_seq_cst))
  {
    std::vector<cancel_source> fire;
    {
      std::lock_guard lock(mutex_);
      fire.swap(waiters_);
      has_waiters_.store(false, std::memory_order_relaxed);
    }
    for (cancel_source& s : fire)
      s.cancel(scope_idle_reason());
  }
  release();
}

} // namespace arc::detail
