// arc: Asio Reasoned Cancellation
#include <arc/persistent_task_group.hpp>

#include <boost/system/system_error.hpp>

#include <cstdio>
#include <ostream>
#include <sstream>

namespace arc {
namespace detail {

// --- group_child ----------------------------------------------------------------

group_child::group_child(group_state* g, std::string name, std::source_location where,
    bool keep_result) noexcept
  : keep_result_(keep_result), group_(g), name_(std::move(name)), where_(where),
    start_(std::chrono::steady_clock::now())
{
}

group_child::~group_child()
{
  if (done_event_)
    done_event_->release();
}

task_info group_child::info() const
{
  task_info i;
  i.id = id_;
  i.name = name_;
  i.group = group_->name();
  i.where = where_;
  i.age = std::chrono::steady_clock::now() - start_;
  if (done())
    i.status = task_status::done;
  if (const task_state* t = task_.get())
  {
    i.requests = t->requests();
    i.reason = t->reason();
    if (i.status != task_status::done && t->cancelled())
      i.status = i.reason.kind() == reason_kind::escalated ? task_status::escalated
                                                          : task_status::cancelling;
  }
  return i;
}

std::exception_ptr group_child::finish(bool failed) noexcept
{
  // What on_error is told is read before the child leaves the group.
  std::optional<task_info> about;
  if (failed)
  {
    try
    {
      about.emplace(info());
      about->status = task_status::done;
    }
    catch (...)
    {
      // No memory for the report: the failure is still counted as one.
    }
  }
  source_state* ev;
  {
    std::lock_guard lock(lock_);
    done_.store(true, std::memory_order_release);
    ev = done_event_;
    if (ev)
      ev->add_ref();
  }
  group_->retire(this);
  std::exception_ptr thrown;
  if (ev)
  {
    try
    {
      ev->cancel(reason::user("done"), asio::cancellation_type::terminal);
    }
    catch (...)
    {
      thrown = std::current_exception();
    }
    ev->release();
  }
  if (failed)
  {
    try
    {
      group_->report(error_, about ? *about : task_info());
    }
    catch (...)
    {
      if (!thrown)
        thrown = std::current_exception();
    }
  }
  return thrown;
}

void group_child::abandon() noexcept
{
  group_->retire(this);
}

source_ref group_child::done_event()
{
  // Made outside the lock (nothing is allocated under a spin lock); the
  // first one made is kept.
  source_ref fresh = source_ref::adopt(source_state::create(1, asio::any_io_executor(group_->executor())));
  bool fire;
  source_ref out;
  {
    std::lock_guard lock(lock_);
    if (!done_event_)
      done_event_ = fresh.detach();
    out = source_ref(done_event_);
    fire = done();
  }
  if (fire)
    out->cancel(reason::user("done"), asio::cancellation_type::terminal);
  return out;
}

// --- group_state ----------------------------------------------------------------

group_state* group_state::create(asio::any_io_executor ex, std::string name, error_handler on_error)
{
  return new group_state(std::move(ex), std::move(name), std::move(on_error));
}

group_state::group_state(asio::any_io_executor ex, std::string name, error_handler on_error)
  : ex_(std::move(ex)), name_(std::move(name)), on_error_(std::move(on_error)),
    generation_(source_state::create(1))
{
}

group_state::~group_state()
{
  generation_->release();
  if (join_event_)
    join_event_->release();
}

source_ref group_state::admit(group_child* c)
{
  std::lock_guard lock(mutex_);
  if (closed_)
    return {};
  c->id_ = next_id_++;
  c->prev_ = tail_;
  c->next_ = nullptr;
  if (tail_)
    tail_->next_ = c;
  else
    head_ = c;
  tail_ = c;
  c->linked_ = true;
  c->add_ref(); // the list's
  size_.fetch_add(1, std::memory_order_release);
  return source_ref(generation_);
}

void group_state::retire(group_child* c) noexcept
{
  source_state* fired = nullptr;
  {
    std::lock_guard lock(mutex_);
    if (!c->linked_)
      return;
    if (c->prev_)
      c->prev_->next_ = c->next_;
    else
      head_ = c->next_;
    if (c->next_)
      c->next_->prev_ = c->prev_;
    else
      tail_ = c->prev_;
    c->prev_ = c->next_ = nullptr;
    c->linked_ = false;
    if (size_.fetch_sub(1, std::memory_order_acq_rel) == 1)
      fired = std::exchange(join_event_, nullptr);
  }
  if (fired)
  {
    // Its only nodes are join waits, whose notify cannot throw.
    try
    {
      fired->cancel(reason::user("group empty"), asio::cancellation_type::terminal);
    }
    catch (...)
    {
    }
    fired->release();
  }
  c->release(); // the list's
}

std::size_t group_state::cancel(const cancel_reason& r, asio::cancellation_type_t t)
{
  source_ref fresh = source_ref::adopt(source_state::create(1));
  source_ref old;
  std::size_t n;
  {
    std::lock_guard lock(mutex_);
    old = source_ref::adopt(std::exchange(generation_, fresh.detach()));
    n = size_.load(std::memory_order_relaxed);
  }
  old->cancel(r, t);
  return n;
}

void group_state::close() noexcept
{
  std::lock_guard lock(mutex_);
  closed_ = true;
}

bool group_state::closed() const noexcept
{
  std::lock_guard lock(mutex_);
  return closed_;
}

std::vector<task_info> group_state::snapshot() const
{
  std::vector<task_info> out;
  std::lock_guard lock(mutex_);
  out.reserve(size_.load(std::memory_order_relaxed));
  for (const group_child* c = head_; c; c = c->next_)
    out.push_back(c->info());
  return out;
}

source_ref group_state::join_event()
{
  source_ref fresh = source_ref::adopt(source_state::create(1, asio::any_io_executor(ex_)));
  source_ref out;
  bool empty;
  {
    std::lock_guard lock(mutex_);
    empty = size_.load(std::memory_order_relaxed) == 0;
    if (!empty)
    {
      if (!join_event_)
        join_event_ = fresh.detach();
      out = source_ref(join_event_);
    }
  }
  if (empty)
  {
    // Empty now: a join completes at once, posted.
    fresh->cancel(reason::user("group empty"), asio::cancellation_type::terminal);
    return fresh;
  }
  return out;
}

void group_state::report(std::exception_ptr e, const task_info& info) const
{
  if (on_error_)
  {
    on_error_(std::move(e), info);
    return;
  }
  std::string what;
  try
  {
    std::rethrow_exception(e);
  }
  catch (const std::exception& x)
  {
    what = x.what();
  }
  catch (...)
  {
    what = "unknown exception";
  }
  std::fprintf(stderr, "arc: group '%s': task '%s' #%llu (%s:%u) failed: %s\n", name_.c_str(),
      info.name.c_str(), static_cast<unsigned long long>(info.id), info.where.file_name(),
      static_cast<unsigned>(info.where.line()), what.c_str());
}

} // namespace detail

// --- Public members -----------------------------------------------------------------

group_ref::executor_type group_ref::get_executor() const noexcept
{
  return state_->executor();
}

std::size_t group_ref::cancel(cancel_reason reason, boost::asio::cancellation_type_t type) const
{
  return state_->cancel(reason, type);
}

void group_ref::close() const noexcept
{
  state_->close();
}

bool group_ref::closed() const noexcept
{
  return state_->closed();
}

std::size_t group_ref::size() const noexcept
{
  return state_->size();
}

const std::string& group_ref::name() const noexcept
{
  return state_->name();
}

std::vector<task_info> group_ref::snapshot() const
{
  return state_->snapshot();
}

persistent_task_group::~persistent_task_group()
{
  if (!state_)
    return;
  state_->close();
  if (state_->size() != 0)
  {
    try
    {
      state_->cancel(reason::shutdown("persistent_task_group destroyed"),
          boost::asio::cancellation_type::terminal);
    }
    catch (...)
    {
      // A destructor does not throw: a cancellation handler's exception is
      // dropped here, as Asio drops a handler's at context destruction.
    }
  }
}

const char* to_string(task_status s) noexcept
{
  switch (s)
  {
  case task_status::running:
    return "running";
  case task_status::cancelling:
    return "cancelling";
  case task_status::escalated:
    return "escalated";
  case task_status::done:
    return "done";
  }
  return "?";
}

std::ostream& operator<<(std::ostream& os, const task_info& info)
{
  std::ostringstream line;
  line << info.group << '/' << (info.name.empty() ? "(unnamed)" : info.name) << " #" << info.id
       << " (" << info.where.file_name() << ':' << info.where.line() << "), age "
       << std::chrono::duration_cast<std::chrono::milliseconds>(info.age).count() << " ms, "
       << to_string(info.status);
  if (info.reason)
    line << ": " << info.reason;
  return os << line.str();
}

namespace this_task {

group_ref group()
{
  detail::task_state* t = detail::current_task();
  if (!t)
    return {};
  detail::group_child* c = t->owner()->group_child_;
  return c ? group_ref(detail::group_ref_ptr(c->group())) : group_ref();
}

std::string_view name() noexcept
{
  detail::task_state* t = detail::current_task();
  if (!t)
    return {};
  detail::group_child* c = t->owner()->group_child_;
  return c ? std::string_view(c->name()) : std::string_view();
}

} // namespace this_task
} // namespace arc
