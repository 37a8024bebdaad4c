// arc: Asio Reasoned Cancellation
#include <arc/persistent_task_group.hpp>
#include <arc/detail/reason_rep.hpp>
#include <arc/detail/registry_core.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <algorithm>
#include <unordered_map>

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
  leave();
  if (done_event_)
    done_event_->release();
}

void group_child::notify(const cancel_reason& r, asio::cancellation_type_t t,
    asio::cancellation_type_t)
{
  group_child_policy().forward(*task_.get(), r, t);
}

void group_child::follow(source_state* generation)
{
  generation->add_ref();
  generation_.store(generation, std::memory_order_release);
  if (source_state::link_result now = generation->link(this); now.reason)
    group_child_policy().forward(*task_.get(), now.reason, now.types);
}

void group_child::leave() noexcept
{
  if (source_state* g = generation_.exchange(nullptr, std::memory_order_acq_rel))
  {
    g->unlink(this);
    g->release();
  }
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
      i.status = escalated_.load(std::memory_order_acquire) ? task_status::escalated
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
  leave();
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
      if (about)
        group_->record_failure(*about, error_);
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
  leave();
  group_->abandoned(this);
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
  registry_core_ptr core = registry_core_of(asio::query(ex, asio::execution::context));
  auto* g = new group_state(std::move(ex), std::move(name), std::move(on_error));
  try
  {
    core->add(g);
  }
  catch (...)
  {
    g->release();
    throw;
  }
  g->registry_ = core.detach();
  return g;
}

void group_state::unregister() noexcept
{
  registry_core* r;
  {
    std::lock_guard lock(mutex_);
    r = std::exchange(registry_, nullptr);
  }
  if (r)
  {
    r->remove(this);
    r->release();
  }
}

void group_state::abandoned(group_child* c) noexcept
{
  if (!retire_if_linked(c))
    return;
  std::optional<task_info> info;
  try
  {
    info.emplace(c->info());
  }
  catch (...)
  {
    return; // no memory to describe it; it has left the group all the same
  }
  registry_core_ptr r;
  {
    std::lock_guard lock(mutex_);
    r = registry_core_ptr(registry_);
  }
  if (r)
    r->abandoned(*info);
}

group_state::group_state(asio::any_io_executor ex, std::string name, error_handler on_error)
  : ex_(std::move(ex)), name_(std::move(name)), on_error_(std::move(on_error)),
    generation_(source_state::create(1))
{
}

group_state::~group_state()
{
  if (registry_)
    registry_->release();
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

bool group_state::retire_if_linked(group_child* c) noexcept
{
  source_state* fired = nullptr;
  {
    std::lock_guard lock(mutex_);
    if (!c->linked_)
      return false;
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
    if (shutdown_)
      ++shutdown_->finished;
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
  return true;
}

std::size_t group_state::cancel(const cancel_reason& r, asio::cancellation_type_t t)
{
  source_ref fresh = source_ref::adopt(source_state::create(1));
  source_state* next = fresh.get();
  source_ref old;
  std::size_t n;
  {
    std::lock_guard lock(mutex_);
    old = source_ref::adopt(std::exchange(generation_, fresh.detach()));
    n = size_.load(std::memory_order_relaxed);
  }
  // The old generation follows the new one: a later cancel (or a shutdown)
  // reaches its children too. Only this call ever gives it a parent.
  next->attach_child(old.get(), unchanged_policy());
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

// --- Shutdown --------------------------------------------------------------------

namespace {

// A generation's requests reach its children as their parent's; an
// escalation reaches them as itself.
class group_child_link final : public link_policy
{
public:
  void forward(source_state& child, const cancel_reason& r,
      asio::cancellation_type_t t) const override
  {
    child.cancel(r.kind() == reason_kind::escalated ? r : reason::parent(r), t);
  }
};

std::string what_of(const std::exception_ptr& e)
{
  try
  {
    std::rethrow_exception(e);
  }
  catch (const std::exception& x)
  {
    return x.what();
  }
  catch (...)
  {
    return "unknown exception";
  }
}

} // namespace

void sort_oldest_first(std::vector<task_info>& tasks)
{
  // std::sort with a total order, not std::stable_sort: libstdc++ 12's
  // stable_sort calls get_temporary_buffer, which clang 19 reports as
  // deprecated.
  std::sort(tasks.begin(), tasks.end(),
      [](const task_info& a, const task_info& b)
      {
        if (a.age != b.age)
          return a.age > b.age;
        if (a.group != b.group)
          return a.group < b.group;
        return a.id < b.id;
      });
}

const link_policy& group_child_policy() noexcept
{
  static const group_child_link p;
  return p;
}

void group_state::begin_shutdown(const cancel_reason& r)
{
  auto record = std::make_unique<shutdown_record>();
  source_ref current;
  record->reason = r;
  record->start = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
    if (!shutdown_)
      shutdown_ = std::move(record);
    current = source_ref(generation_);
  }
  current->cancel(r, asio::cancellation_type::terminal);
}

void group_state::escalate()
{
  cancel_reason why;
  source_ref current;
  {
    std::lock_guard lock(mutex_);
    if (!shutdown_)
      return;
    current = source_ref(generation_);
    why = reason::escalated(shutdown_->reason);
    for (group_child* c = head_; c; c = c->next_)
    {
      if (c->escalated_.exchange(true, std::memory_order_acq_rel))
        continue;
      shutdown_->escalated.push_back(c->info());
    }
  }
  current->cancel(why, asio::cancellation_type::terminal);
}

void group_state::record_failure(const task_info& info, const std::exception_ptr& e)
{
  std::lock_guard lock(mutex_);
  if (shutdown_)
    shutdown_->failed.push_back(failed_task{info, e, what_of(e)});
}

shutdown_report group_state::make_report(bool incomplete) const
{
  shutdown_report out;
  std::lock_guard lock(mutex_);
  if (shutdown_)
  {
    out.reason = shutdown_->reason;
    out.elapsed = std::chrono::steady_clock::now() - shutdown_->start;
    out.finished = shutdown_->finished;
    out.failed = shutdown_->failed;
    // Those still live are described as they are now; the others have
    // finished since.
    std::unordered_map<std::uint64_t, const group_child*> live;
    for (const group_child* c = head_; c; c = c->next_)
      if (c->escalated_.load(std::memory_order_relaxed))
        live.emplace(c->id(), c);
    out.escalated = shutdown_->escalated;
    for (task_info& e : out.escalated)
    {
      if (auto it = live.find(e.id); it != live.end())
        e = it->second->info();
      else
        e.status = task_status::done;
    }
  }
  if (incomplete)
  {
    for (const group_child* c = head_; c; c = c->next_)
      out.stragglers.push_back(c->info());
    sort_oldest_first(out.stragglers);
  }
  return out;
}

asio::awaitable<shutdown_outcome> run_group_shutdown(group_ref_ptr g, cancel_reason r,
    shutdown_options opts)
{
  using namespace asio::experimental::awaitable_operators;
  const auto start = std::chrono::steady_clock::now();
  g->begin_shutdown(r);
  asio::steady_timer timer(co_await asio::this_coro::executor, start + opts.grace);
  bool escalated = false;
  bool aborted = false;
  try
  {
    for (;;)
    {
      auto token = asio::as_tuple(asio::use_awaitable);
      auto which = co_await (
          asio::async_initiate<decltype(token), void(boost::system::error_code)>(
              initiate_group_join(g.get()), token)
          || timer.async_wait(token));
      // as_tuple: a cancelled wait shows as its error code, not a throw.
      const boost::system::error_code wait_ec = which.index() == 0
          ? std::get<0>(std::get<0>(which))
          : std::get<0>(std::get<1>(which));
      if (wait_ec)
      {
        aborted = true;
        break;
      }
      if (which.index() == 0)
        break; // empty
      if (!escalated)
      {
        escalated = true;
        g->escalate();
        if (opts.force_after > opts.grace)
        {
          timer.expires_at(start + opts.force_after);
          continue;
        }
      }
      co_return shutdown_outcome{make_error_code(error::shutdown_incomplete), g->make_report(true)};
    }
  }
  catch (const boost::system::system_error&)
  {
    // The shutdown's own wait was cancelled: the group stays closed and its
    // children cancelled; nobody waits for them any more.
    aborted = true;
  }
  if (aborted)
    co_return shutdown_outcome{asio::error::operation_aborted, g->make_report(false)};
  co_return shutdown_outcome{{}, g->make_report(false)};
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
  state_->unregister();
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

std::ostream& operator<<(std::ostream& os, const shutdown_report& report)
{
  std::ostringstream out;
  const auto ms = [](std::chrono::steady_clock::duration d) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  };
  for (const task_info& t : report.stragglers)
    out << "straggler: " << t << '\n';
  for (const task_info& t : report.escalated)
    out << "escalated: " << t << '\n';
  for (const failed_task& f : report.failed)
    out << "failed: " << f.info << ": " << f.what << '\n';
  std::size_t shields_running = 0;
  for (const shield_info& sh : report.shields)
  {
    out << sh << '\n';
    shields_running += sh.status == shield_status::running;
  }
  out << "shutdown " << (report.complete() ? "complete" : "INCOMPLETE") << " after " << ms(report.elapsed)
      << " ms: " << report.finished << " finished, " << report.escalated.size() << " escalated, "
      << report.failed.size() << " failed, " << report.stragglers.size() << " still running";
  if (!report.shields.empty())
    out << ", " << report.shields.size() << " shield" << (report.shields.size() == 1 ? "" : "s") << " ("
        << shields_running << " still running)";
  if (report.reason)
    out << "; reason: " << report.reason;
  return os << out.str();
}

bool shutdown_report::complete() const noexcept
{
  return stragglers.empty()
      && std::none_of(shields.begin(), shields.end(),
          [](const shield_info& s) { return s.status == shield_status::running; });
}

const char* to_string(shield_status s) noexcept
{
  return s == shield_status::running ? "running" : "done";
}

std::ostream& operator<<(std::ostream& os, const shield_info& info)
{
  const auto ms = [](std::chrono::steady_clock::duration d) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  };
  std::ostringstream line;
  line << (info.executor ? "shield executor " : "shield ") << (info.name.empty() ? "(unnamed)" : info.name)
       << " #" << info.id << " (" << detail::base_name(info.where.file_name()) << ':' << info.where.line()
       << "), age " << ms(info.age) << " ms";
  if (info.executor)
    line << ", " << info.pending << " pending";
  if (info.detached)
    line << ", detached";
  if (info.deadline != std::chrono::steady_clock::time_point::max() && info.status == shield_status::running)
    line << ", deadline in " << ms(info.deadline - std::chrono::steady_clock::now()) << " ms";
  line << ", " << to_string(info.status);
  if (info.forced)
    line << ", forced at its deadline";
  return os << line.str();
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
       << " (" << detail::base_name(info.where.file_name()) << ':' << info.where.line() << "), age "
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
