// arc: Asio Reasoned Cancellation
#include <arc/registry.hpp>
#include <arc/shield.hpp>

#include <arc/bind_cancel.hpp>
#include <arc/cancel_source.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <mutex>

namespace arc {
namespace detail {

// --- registry_core --------------------------------------------------------------

void registry_core::add(group_state* g)
{
  std::lock_guard lock(mutex_);
  groups_.push_back(group_ref_ptr(g));
}

void registry_core::remove(group_state* g) noexcept
{
  group_ref_ptr gone; // released outside the lock
  std::lock_guard lock(mutex_);
  auto it = std::find_if(groups_.begin(), groups_.end(),
      [g](const group_ref_ptr& p) { return p.get() == g; });
  if (it != groups_.end())
  {
    gone = std::move(*it);
    groups_.erase(it);
  }
}

std::vector<group_ref_ptr> registry_core::groups() const
{
  std::lock_guard lock(mutex_);
  return groups_;
}

void registry_core::set_on_abandoned(std::function<void(const task_info&)> h)
{
  std::lock_guard lock(mutex_);
  on_abandoned_ = std::move(h);
}

void registry_core::abandoned(const task_info& info) const noexcept
{
  std::function<void(const task_info&)> hook;
  try
  {
    std::lock_guard lock(mutex_);
    hook = on_abandoned_;
  }
  catch (...)
  {
  }
  try
  {
    if (hook)
    {
      hook(info);
      return;
    }
    std::fprintf(stderr,
        "arc: group '%s': task '%s' #%llu (%s:%u) destroyed unfinished with its io_context\n",
        info.group.c_str(), info.name.c_str(), static_cast<unsigned long long>(info.id),
        info.where.file_name(), static_cast<unsigned>(info.where.line()));
  }
  catch (...)
  {
    // Reported from a destructor: an exception cannot go anywhere.
  }
}

void registry_core::detach() noexcept
{
  std::vector<group_ref_ptr> gone;
  std::vector<shield_ref> shields_gone;
  {
    std::lock_guard lock(mutex_);
    gone.swap(groups_);
    shields_gone.swap(shields_);
  }
  gone_.store(true, std::memory_order_release);
}

std::uint64_t registry_core::add_scope(shield_scope* s)
{
  std::lock_guard lock(mutex_);
  scopes_.push_back(s);
  return ++next_shield_id_;
}

void registry_core::remove_scope(shield_scope* s) noexcept
{
  std::lock_guard lock(mutex_);
  auto it = std::find(scopes_.begin(), scopes_.end(), s);
  if (it != scopes_.end())
    scopes_.erase(it);
}

std::vector<shield_scope_ref> registry_core::busy_scopes() const
{
  std::vector<shield_scope_ref> out;
  std::lock_guard lock(mutex_);
  out.reserve(scopes_.size()); // nothing throws once a reference is taken
  for (shield_scope* s : scopes_)
    // A scope whose last reference is going is removing itself: skip it.
    if (s->pending() != 0 && s->try_add_ref())
      out.push_back(shield_scope_ref::adopt(s));
  return out;
}

std::uint64_t registry_core::add_shield(shield_record* s)
{
  std::lock_guard lock(mutex_);
  shields_.push_back(shield_ref(s));
  return ++next_shield_id_;
}

void registry_core::remove_shield(shield_record* s) noexcept
{
  shield_ref gone; // released outside the lock
  std::lock_guard lock(mutex_);
  auto it = std::find_if(shields_.begin(), shields_.end(),
      [s](const shield_ref& p) { return p.get() == s; });
  if (it != shields_.end())
  {
    gone = std::move(*it);
    shields_.erase(it);
  }
}

std::vector<shield_ref> registry_core::shields() const
{
  std::lock_guard lock(mutex_);
  return shields_;
}

void registry_core::set_on_shield_error(std::function<void(std::exception_ptr, const shield_info&)> h)
{
  std::lock_guard lock(mutex_);
  on_shield_error_ = std::move(h);
}

void registry_core::shield_failed(std::exception_ptr e, const shield_info& info) const noexcept
{
  std::function<void(std::exception_ptr, const shield_info&)> hook;
  try
  {
    std::lock_guard lock(mutex_);
    hook = on_shield_error_;
  }
  catch (...)
  {
  }
  try
  {
    if (hook)
    {
      hook(e, info);
      return;
    }
    std::string what = "unknown exception";
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
    }
    std::fprintf(stderr, "arc: detached shield '%s' #%llu (%s:%u) failed: %s\n", info.name.c_str(),
        static_cast<unsigned long long>(info.id), info.where.file_name(),
        static_cast<unsigned>(info.where.line()), what.c_str());
  }
  catch (...)
  {
    // Nobody awaits the shield: an exception cannot go anywhere.
  }
}

registry_core_ptr registry_core_of(asio::execution_context& ctx)
{
  return registry_access::core(asio::use_service<registry>(ctx));
}

registry_core_ptr registry_access::core(const registry& r) noexcept
{
  return r.core_;
}

// --- Shutting down several groups -------------------------------------------------

namespace {

shutdown_report merge(const cancel_reason& r, std::vector<shutdown_report>& parts)
{
  shutdown_report out;
  out.reason = r;
  for (shutdown_report& p : parts)
  {
    out.elapsed = std::max(out.elapsed, p.elapsed);
    out.finished += p.finished;
    std::move(p.escalated.begin(), p.escalated.end(), std::back_inserter(out.escalated));
    std::move(p.failed.begin(), p.failed.end(), std::back_inserter(out.failed));
    std::move(p.stragglers.begin(), p.stragglers.end(), std::back_inserter(out.stragglers));
  }
  sort_oldest_first(out.stragglers);
  return out;
}

// The groups' shutdowns, run side by side; done fires when the last ends.
struct multi_shutdown
{
  multi_shutdown(std::size_t n, const asio::any_io_executor& ex) : remaining(n), done(ex) {}

  void finish_one(std::exception_ptr e, shutdown_outcome o)
  {
    bool last;
    {
      std::lock_guard lock(mutex);
      if (e && !o.ec)
        o.ec = asio::error::operation_aborted;
      if (o.ec == error::shutdown_incomplete)
        incomplete = true;
      parts.push_back(std::move(o.report));
      last = --remaining == 0;
    }
    if (last)
      done.cancel(reason::user("every group has ended"));
  }

  shutdown_outcome result(const cancel_reason& r)
  {
    std::lock_guard lock(mutex);
    shutdown_outcome out;
    out.report = merge(r, parts);
    if (incomplete)
      out.ec = make_error_code(error::shutdown_incomplete);
    return out;
  }

  std::mutex mutex;
  std::size_t remaining;
  bool incomplete = false;
  std::vector<shutdown_report> parts;
  cancel_source done;
  cancel_source stop; // cancels the groups' shutdown coroutines
};

std::shared_ptr<multi_shutdown> start_all(const std::vector<group_ref_ptr>& groups,
    const asio::any_io_executor& ex, const cancel_reason& r, const shutdown_options& opts)
{
  auto st = std::make_shared<multi_shutdown>(groups.size(), ex);
  if (groups.empty())
    st->done.cancel(reason::user("no groups"));
  for (const group_ref_ptr& g : groups)
  {
    g->close();
    arc::co_spawn(g->executor(), run_group_shutdown(g, r, opts),
        bind_cancel(st->stop,
            [st](std::exception_ptr e, shutdown_outcome o) { st->finish_one(e, std::move(o)); }));
  }
  return st;
}

shutdown_outcome gave_up(const std::vector<group_ref_ptr>& groups, const cancel_reason& r)
{
  std::vector<shutdown_report> parts;
  for (const group_ref_ptr& g : groups)
    parts.push_back(g->make_report(true));
  shutdown_outcome out;
  out.report = merge(r, parts);
  out.ec = make_error_code(error::shutdown_incomplete);
  return out;
}

} // namespace

namespace {

// The shields a context's shutdown has seen running: shielded awaitables and
// shield executors with work pending.
struct shields_seen
{
  std::vector<shield_ref> records;
  std::vector<shield_scope_ref> scopes;

  template <typename Ref>
  static void note(std::vector<Ref>& seen, const std::vector<Ref>& live)
  {
    for (const Ref& s : live)
      if (std::none_of(seen.begin(), seen.end(), [&](const Ref& x) { return x.get() == s.get(); }))
        seen.push_back(s);
  }

  static shields_seen now(const registry_core& core)
  {
    return {core.shields(), core.busy_scopes()};
  }
};

// Wait until no shield on the context runs and no shield executor has work
// pending, or until @p until. Every shield seen running is added to @p seen
// (the caller's, so that what was seen survives this wait being cancelled by
// a race). Returns false if the wait itself was cancelled.
asio::awaitable<bool> wait_for_shields(registry_core_ptr core,
    std::chrono::steady_clock::time_point until, shields_seen& seen)
{
  using namespace asio::experimental::awaitable_operators;
  const asio::any_io_executor ex = co_await asio::this_coro::executor;
  asio::steady_timer timer(ex, until);
  for (;;)
  {
    const std::vector<shield_ref> live = core->shields();
    shields_seen::note(seen.records, live);
    const std::vector<shield_scope_ref> busy = core->busy_scopes();
    shields_seen::note(seen.scopes, busy);
    cancel_source next(ex);
    if (!live.empty())
      next = live.front()->done();
    else if (!busy.empty())
      busy.front()->when_idle(next);
    else
      co_return true;
    auto which = co_await (next.async_wait(asio::use_awaitable)
        || timer.async_wait(asio::as_tuple(asio::use_awaitable)));
    if (which.index() == 0 && !std::get<0>(which))
      co_return false; // this wait was cancelled
    if (which.index() == 1)
      co_return !std::get<0>(std::get<1>(which)); // force_after, or cancelled
  }
}

// The shields part of a context's report: each one seen, as it is now. A
// shield still running makes the shutdown incomplete.
void add_shields(shutdown_outcome& out, const shields_seen& seen,
    std::chrono::steady_clock::time_point start)
{
  const auto add = [&](shield_info i) {
    if (i.status == shield_status::running && !out.ec)
      out.ec = make_error_code(error::shutdown_incomplete);
    out.report.shields.push_back(std::move(i));
  };
  for (const shield_ref& s : seen.records)
    add(s->info());
  for (const shield_scope_ref& s : seen.scopes)
    add(s->info());
  out.report.elapsed = std::max<std::chrono::steady_clock::duration>(out.report.elapsed,
      std::chrono::steady_clock::now() - start);
}

} // namespace

asio::awaitable<shutdown_outcome> run_context_shutdown(registry_core_ptr core,
    std::vector<group_ref_ptr> groups, cancel_reason r, shutdown_options opts)
{
  const auto start = std::chrono::steady_clock::now();
  const asio::any_io_executor ex = co_await asio::this_coro::executor;
  // The shields running now are reported even if they end before the
  // groups do (a child inside its shield keeps its group waiting).
  shields_seen seen = shields_seen::now(*core);
  auto st = start_all(groups, ex, r, opts);
  // An empty reason: this wait itself was cancelled.
  const cancel_reason ended = co_await st->done.async_wait(asio::use_awaitable);
  if (!ended)
  {
    st->stop.cancel(reason::user("the context's shutdown stopped waiting"));
    shutdown_outcome out = st->result(r);
    out.ec = asio::error::operation_aborted;
    co_return out;
  }
  shutdown_outcome out = st->result(r);
  // Then the shields, each bounded by its own deadline and all by force_after.
  const bool waited = co_await wait_for_shields(core, start + opts.force_after, seen);
  add_shields(out, seen, start);
  if (!waited)
    out.ec = asio::error::operation_aborted;
  co_return out;
}

asio::awaitable<shutdown_outcome> run_signal_shutdown(registry_core_ptr core,
    std::vector<int> signals, shutdown_options opts, std::source_location where)
{
  using namespace asio::experimental::awaitable_operators;
  const asio::any_io_executor ex = co_await asio::this_coro::executor;
  asio::signal_set set(ex);
  for (int s : signals)
    set.add(s);
  auto [ec, first] = co_await set.async_wait(asio::as_tuple(asio::use_awaitable));
  if (ec)
    co_return shutdown_outcome{asio::error::operation_aborted, {}};

  const auto start = std::chrono::steady_clock::now();
  const cancel_reason r = reason::signal(first, where);
  shields_seen seen = shields_seen::now(*core);
  const std::vector<group_ref_ptr> groups = core->groups();
  auto st = start_all(groups, ex, r, opts);
  int received = 1;
  for (;;)
  {
    auto which = co_await (st->done.async_wait(asio::use_awaitable)
        || set.async_wait(asio::as_tuple(asio::use_awaitable)));
    if (which.index() == 0)
    {
      if (!std::get<0>(which))
        break; // this wait was cancelled
      // The groups are done; then the shields, which signals do not force:
      // a third signal gives up on them too.
      shutdown_outcome out = st->result(r);
      bool waited = true;
      for (;;)
      {
        auto w = co_await (wait_for_shields(core, start + opts.force_after, seen)
            || set.async_wait(asio::as_tuple(asio::use_awaitable)));
        if (w.index() == 0)
        {
          waited = std::get<0>(w);
          break;
        }
        if (std::get<0>(std::get<1>(w)))
        {
          waited = false; // this wait was cancelled
          break;
        }
        if (++received >= 3)
          break; // a third signal: give up (the shields still running are listed)
      }
      add_shields(out, seen, start);
      if (!waited)
        out.ec = asio::error::operation_aborted;
      co_return out;
    }
    if (std::get<0>(std::get<1>(which)))
      break; // this wait was cancelled
    if (++received == 2)
    {
      // A second signal: escalate now, as the grace's end would.
      for (const group_ref_ptr& g : groups)
        g->escalate();
      continue;
    }
    // A third: cancel what still runs once more (a guard counting requests
    // sees it), and give up waiting.
    for (const group_ref_ptr& g : groups)
      g->escalate();
    st->stop.cancel(reason::signal(std::get<1>(std::get<1>(which))));
    co_return gave_up(groups, r);
  }
  st->stop.cancel(reason::user("the shutdown on signals stopped waiting"));
  shutdown_outcome out = st->result(r);
  out.ec = asio::error::operation_aborted;
  co_return out;
}

} // namespace detail

// --- registry ---------------------------------------------------------------------

registry::registry(boost::asio::execution_context& ctx)
  : service(ctx), core_(detail::registry_core_ptr::adopt(new detail::registry_core))
{
}

registry::~registry()
{
  core_->detach();
}

void registry::shutdown()
{
  // The context's other services destroy the handlers they own after this
  // (the scheduler was made first, so it is shut down last), and each group
  // child they abandon reports itself through the core, which outlives the
  // service. A shield executor's pending work is destroyed with them: it is
  // reported here, once per executor, while the count still says so.
  for (const detail::shield_scope_ref& s : core_->busy_scopes())
  {
    const shield_info i = s->info();
    task_info t;
    t.id = i.id;
    t.name = i.name;
    t.group = "(shield executor)";
    t.where = i.where;
    t.age = i.age;
    core_->abandoned(t);
  }
}

std::vector<group_info> registry::groups() const
{
  std::vector<group_info> out;
  for (const detail::group_ref_ptr& g : core_->groups())
  {
    group_info info;
    info.name = g->name();
    info.tasks = g->snapshot();
    info.size = info.tasks.size();
    info.closed = g->closed();
    out.push_back(std::move(info));
  }
  return out;
}

std::vector<shield_info> registry::shields() const
{
  std::vector<shield_info> out;
  for (const detail::shield_ref& s : core_->shields())
    out.push_back(s->info());
  for (const detail::shield_scope_ref& s : core_->busy_scopes())
    out.push_back(s->info());
  return out;
}

void registry::on_shield_error(std::function<void(std::exception_ptr, const shield_info&)> h)
{
  core_->set_on_shield_error(std::move(h));
}

std::vector<shield_info> shields(boost::asio::execution_context& ctx)
{
  return boost::asio::use_service<registry>(ctx).shields();
}

void registry::on_abandoned(abandoned_handler h)
{
  core_->set_on_abandoned(std::move(h));
}

std::vector<group_info> groups(boost::asio::execution_context& ctx)
{
  return boost::asio::use_service<registry>(ctx).groups();
}

} // namespace arc
