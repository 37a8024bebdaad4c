// arc: Asio Reasoned Cancellation
#ifndef ARC_IMPL_CANCEL_GUARD_HPP
#define ARC_IMPL_CANCEL_GUARD_HPP

#include <arc/detail/bound_handler.hpp>
#include <arc/reasoned.hpp>
#include <arc/detail/task_executor.hpp>
#include <arc/detail/task_state.hpp>
#include <arc/detail/work_task.hpp>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/system_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/recycling_allocator.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <algorithm>
#include <atomic>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

namespace arc::detail {

// Installed in a guard's upstream slot: each emit is one request.
template <typename View>
class guard_input
{
public:
  guard_input(cancel_guard* g, View v) noexcept : guard_(g), view_(v) {}

  void operator()(asio::cancellation_type_t type) { guard_->request(type, view_.reason()); }

private:
  cancel_guard* guard_;
  View view_;
};

// The type a forced request is delivered with: without the force bit;
// terminal if nothing is left.
inline asio::cancellation_type_t without_force(asio::cancellation_type_t t) noexcept
{
  t = t & ~force;
  return t == asio::cancellation_type::none ? asio::cancellation_type::terminal : t;
}

// --- arc::guarded ---------------------------------------------------------------

// What a guarded operation shares with its handler: the guard, and the timer
// of a time limit.
struct guarded_state
{
  explicit guarded_state(escalation_policy p) : guard(p) {}
  cancel_guard guard;
  std::optional<asio::steady_timer> timer;
};

// The guarded operation's handler: its slot is the guard's. On completion it
// lets go of its own slot (the guard's upstream) and of the timer.
template <typename Handler>
class guarded_handler
{
public:
  using arc_wrapped_handler = Handler;
  using cancellation_slot_type = cancellation_slot;

  template <typename H>
  guarded_handler(H&& h, std::shared_ptr<guarded_state> st, bool attached)
    : handler_(std::forward<H>(h)), state_(std::move(st)), attached_(attached)
  {
  }

  cancellation_slot_type get_cancellation_slot() const noexcept { return state_->guard.slot(); }

  template <typename... Args>
  void operator()(Args&&... args)
  {
    if (attached_)
      asio::get_associated_cancellation_slot(handler_).clear();
    if (state_->timer)
      state_->timer->cancel();
    std::shared_ptr<guarded_state> keep = std::move(state_);
    std::move(handler_)(std::forward<Args>(args)...);
  }

  Handler handler_;

private:
  std::shared_ptr<guarded_state> state_;
  bool attached_;
};

template <typename Initiation>
class initiate_guarded : public initiation_base<Initiation>
{
public:
  template <typename I>
  initiate_guarded(I&& init, escalation_policy p)
    : initiation_base<Initiation>(std::forward<I>(init)), policy_(p)
  {
  }

  template <typename Handler, typename... Args>
  void operator()(Handler&& h, Args&&... args) &&
  {
    using handler_type = std::decay_t<Handler>;
    // The handler's allocator, as Asio's operations use it; by default Asio's
    // thread-local recycling cache.
    auto st = std::allocate_shared<guarded_state>(
        asio::get_associated_allocator(h, asio::recycling_allocator<void>()), policy_);
    auto own = asio::get_associated_cancellation_slot(h);
    const bool attached = own.is_connected();
    if (attached)
      st->guard.attach(own);
    if (policy_.after_time != std::chrono::steady_clock::duration::max())
    {
      auto ex = asio::get_associated_executor(h, emit_fallback_executor());
      st->timer.emplace(ex, policy_.after_time);
      st->timer->async_wait([w = std::weak_ptr<guarded_state>(st)](boost::system::error_code ec) {
        if (auto s = w.lock(); s && !ec)
          s->guard.escalate(reason::timeout(s->guard.policy().after_time));
      });
    }
    std::move(*this).inner()(
        guarded_handler<handler_type>(std::forward<Handler>(h), std::move(st), attached),
        std::forward<Args>(args)...);
  }

private:
  asio::any_io_executor emit_fallback_executor() const
  {
    if constexpr (requires { this->inner().get_executor(); })
      return this->inner().get_executor();
    else
      return asio::system_executor();
  }

  escalation_policy policy_;
};

struct guard_policy
{
  template <typename Signature>
  using signature = Signature;

  template <typename... Signatures, typename Initiation, typename Token>
  static auto wrap(Initiation&& init, const Token& token)
  {
    return initiate_guarded<std::decay_t<Initiation>>(std::forward<Initiation>(init), token.policy_);
  }
};

// A cleanup: its work (a task of its own), and the node through which the
// calling task's requests reach it: linked into the task's source while the
// cleanup runs, it counts each request and passes on the escalations.
template <typename T>
class cleanup_state final : public cancel_node
{
public:
  static ref_ptr<cleanup_state> make(task_state* outer, escalation_policy policy,
      const asio::any_io_executor& ex, std::source_location where)
  {
    auto s = ref_ptr<cleanup_state>::adopt(new cleanup_state(outer, policy, ex, where));
    // Only requests made from now on are the cleanup's: the ones before are
    // what it cleans up after.
    static_cast<void>(outer->link(s.get()));
    if (policy.after_time != std::chrono::steady_clock::duration::max())
      s->body_->arm_deadline(std::chrono::steady_clock::now() + policy.after_time,
          reason::escalated(outer->reason(), where), {}, where);
    return s;
  }

  task_state* body() const noexcept { return body_.get(); }
  const task_ref& body_ref() const noexcept { return body_; }
  const cancel_source& done() const noexcept { return done_; }

  void finish(std::exception_ptr e, bool abandoned) noexcept
  {
    error_ = std::move(e);
    if (!abandoned)
      done_.cancel(reason::user("cleanup done"));
  }

  // The cleanup has returned: requests are the task's alone again.
  void unlink() noexcept { outer_->unlink(this); }

  T take()
  {
    if (error_)
      std::rethrow_exception(error_);
    if constexpr (!std::is_void_v<T>)
      return std::move(*value_);
  }

  void notify(const cancel_reason& r, asio::cancellation_type_t t,
      asio::cancellation_type_t) override
  {
    if ((t & force) != asio::cancellation_type::none)
    {
      body_->cancel(r, without_force(t));
      return;
    }
    const std::size_t n = absorbed_.fetch_add(1, std::memory_order_relaxed) + 1;
    if (n == policy_.after_requests)
      body_->cancel(reason::escalated(r, where_), asio::cancellation_type::terminal);
  }
  bool try_add_ref() noexcept override { return refs_.try_add(); }
  void release() noexcept override
  {
    if (refs_.release())
      delete this;
  }
  void add_ref() noexcept { refs_.add(); }

  std::conditional_t<std::is_void_v<T>, bool, std::optional<T>> value_{};

private:
  cleanup_state(task_state* outer, escalation_policy policy, const asio::any_io_executor& ex,
      std::source_location where)
    : outer_(outer), policy_(policy), where_(where),
      body_(task_ref::adopt(task_state_impl<asio::any_io_executor>::create(
          cancel_source_options{}.history_limit, asio::any_io_executor(ex), nullptr))),
      done_(ex)
  {
  }
  ~cleanup_state()
  {
    outer_->unlink(this);
  }

  ref_count refs_;
  task_ref outer_;
  escalation_policy policy_;
  std::source_location where_;
  task_ref body_;
  cancel_source done_;
  std::exception_ptr error_;
  std::atomic<std::size_t> absorbed_{0};
};

// cancel_and_wait's handler: classifies how the child ended.
template <typename Handler, typename T>
class cancel_wait_completion
{
public:
  using arc_wrapped_handler = Handler;

  template <typename H>
  cancel_wait_completion(H&& h, task_handle<T> target, bool was_done)
    : handler_(std::forward<H>(h)), target_(std::move(target)), was_done_(was_done)
  {
  }

  template <typename... Args>
  void operator()(std::exception_ptr e, Args&&...)
  {
    std::exception_ptr out;
    if (was_done_)
      out = std::make_exception_ptr(
          boost::system::system_error(make_error_code(error::already_finished), "arc::cancel_and_wait"));
    else if (!target_.done()) // the wait itself was cancelled
      out = std::make_exception_ptr(cancelled_error(
          make_error_code(asio::error::operation_aborted), reason_for_completion(handler_)));
    else if (target_.ended_cancelled())
      out = nullptr;
    else if (!e)
      out = std::make_exception_ptr(
          boost::system::system_error(make_error_code(error::cancel_ignored), "arc::cancel_and_wait"));
    else
      out = std::move(e);
    task_handle<T> gone = std::move(target_);
    std::move(handler_)(std::move(out));
  }

  Handler handler_;

private:
  task_handle<T> target_;
  bool was_done_;
};

template <typename T>
class initiate_cancel_and_wait
{
public:
  using executor_type = asio::any_io_executor;

  initiate_cancel_and_wait(task_handle<T> target, cancel_reason r)
    : target_(std::move(target)), reason_(std::move(r))
  {
  }

  // The target's group's: where it completes for a handler without an
  // executor (and what use_promise needs).
  executor_type get_executor() const noexcept { return target_.get_executor(); }

  template <typename Handler>
  void operator()(Handler&& h) const
  {
    if (!target_)
      throw boost::system::system_error(
          make_error_code(boost::system::errc::invalid_argument), "arc::cancel_and_wait");
    const bool was_done = target_.done();
    if (!was_done)
      target_.cancel(reason_);
    target_.async_wait(cancel_wait_completion<std::decay_t<Handler>, T>(
        std::forward<Handler>(h), target_, was_done));
  }

private:
  task_handle<T> target_;
  cancel_reason reason_;
};

// --- cancel_and_wait over several targets --------------------------------------

// What the waits on each target share: their outcomes, the count of those
// still waiting, and one signal per wait, through which the caller's
// cancellation stops them all. Every wait completes on the caller's
// handler's executor, where the caller's slot is also emitted: so the last
// completion, which clears that slot, never races an emit into it.
template <typename Handler, typename T, typename Executor>
class cancel_all_state
{
public:
  cancel_all_state(Handler h, std::size_t n, Executor ex)
    : handler_(std::move(h)), outcomes_(n), signals_(new asio::cancellation_signal[n]), left_(n),
      ex_(std::move(ex))
  {
  }

  // Connect the caller's slot: a request there stops every wait.
  void attach()
  {
    auto slot = asio::get_associated_cancellation_slot(handler_);
    if (!slot.is_connected())
      return;
    attached_ = true;
    slot.template emplace<abort_all>(this);
  }

  const Executor& executor() const noexcept { return ex_; }
  asio::cancellation_slot slot(std::size_t i) const noexcept { return signals_[i].slot(); }

  // Target @p i's outcome; the last one completes the caller. @p self is the
  // reference the wait held.
  static void done(std::shared_ptr<cancel_all_state> self, std::size_t i, std::exception_ptr e)
  {
    self->outcomes_[i] = std::move(e);
    if (self->left_.fetch_sub(1, std::memory_order_acq_rel) != 1)
      return;
    // Posted: this may run inside the caller's slot's handler (a wait
    // stopped inline by abort_all), which must not clear its own slot.
    const Executor ex = self->ex_;
    asio::post(ex, [self = std::move(self)]() mutable { finish(std::move(self)); });
  }

private:
  static void finish(std::shared_ptr<cancel_all_state> self)
  {
    cancel_all_state& s = *self;
    if (s.attached_)
      asio::get_associated_cancellation_slot(s.handler_).clear();
    std::exception_ptr out;
    if (s.aborted_)
      out = std::make_exception_ptr(cancelled_error(
          make_error_code(asio::error::operation_aborted), reason_for_completion(s.handler_)));
    else
      for (std::exception_ptr& o : s.outcomes_)
        if (o)
        {
          out = std::move(o);
          break;
        }
    Handler h = std::move(s.handler_);
    self.reset();
    std::move(h)(std::move(out));
  }

  struct abort_all
  {
    cancel_all_state* s;
    void operator()(asio::cancellation_type_t)
    {
      s->aborted_ = true;
      for (std::size_t i = 0; i != s->outcomes_.size(); ++i)
        s->signals_[i].emit(asio::cancellation_type::terminal);
    }
  };

  Handler handler_;
  std::vector<std::exception_ptr> outcomes_;
  std::unique_ptr<asio::cancellation_signal[]> signals_;
  std::atomic<std::size_t> left_;
  Executor ex_;
  bool attached_ = false;
  std::atomic<bool> aborted_{false};
};

// The handler of the wait on one of several targets.
template <typename State>
class cancel_all_member
{
public:
  using executor_type = std::decay_t<decltype(std::declval<const State&>().executor())>;
  using cancellation_slot_type = asio::cancellation_slot;

  cancel_all_member(std::shared_ptr<State> s, std::size_t i) : state_(std::move(s)), i_(i) {}

  executor_type get_executor() const noexcept { return state_->executor(); }
  cancellation_slot_type get_cancellation_slot() const noexcept { return state_->slot(i_); }

  void operator()(std::exception_ptr e) { State::done(std::move(state_), i_, std::move(e)); }

private:
  std::shared_ptr<State> state_;
  std::size_t i_;
};

template <typename T>
class initiate_cancel_and_wait_all
{
public:
  using executor_type = asio::any_io_executor;

  initiate_cancel_and_wait_all(std::vector<task_handle<T>> targets, cancel_reason r)
    : targets_(std::move(targets)), reason_(std::move(r))
  {
  }

  executor_type get_executor() const noexcept
  {
    return targets_.empty() ? executor_type() : targets_.front().get_executor();
  }

  template <typename Handler>
  void operator()(Handler&& h) const
  {
    using handler_type = std::decay_t<Handler>;
    if (targets_.empty()
        || std::any_of(targets_.begin(), targets_.end(), [](const task_handle<T>& t) { return !t; }))
      throw boost::system::system_error(
          make_error_code(boost::system::errc::invalid_argument), "arc::cancel_and_wait");
    auto ex = asio::get_associated_executor(h, get_executor());
    using state_type = cancel_all_state<handler_type, T, decltype(ex)>;
    auto st = std::make_shared<state_type>(std::forward<Handler>(h), targets_.size(), std::move(ex));
    st->attach();
    for (std::size_t i = 0; i != targets_.size(); ++i)
      initiate_cancel_and_wait<T>(targets_[i], reason_)(cancel_all_member<state_type>(st, i));
  }

private:
  std::vector<task_handle<T>> targets_;
  cancel_reason reason_;
};

template <typename T, typename Executor>
boost::asio::awaitable<T, Executor> run_cleanup(boost::asio::awaitable<T, Executor> work,
    escalation_policy policy, std::source_location where)
{
  const Executor ex = co_await asio::this_coro::executor;
  const asio::any_io_executor inner = unwrap_task_executor(asio::any_io_executor(ex));
  task_state* outer = current_task();
  auto st = cleanup_state<T>::make(outer, policy, inner, where);
  st->body()->group_child_ = outer->owner()->group_child_;

  gate_hold hold(outer);
  spawn_work(inner, st->body_ref(),
      work_completion<cleanup_state<T>>(st), std::move(work));
  co_await st->done().async_wait(
      asio::bind_cancellation_slot(asio::cancellation_slot(), asio::use_awaitable_t<Executor>()));
  st->unlink();
  hold.release();
  co_return st->take();
}

} // namespace arc::detail

namespace arc {

template <typename CancellationSlot>
void cancel_guard::attach(CancellationSlot upstream)
{
  using view = decltype(detail::reason_view(upstream));
  upstream.template emplace<detail::guard_input<view>>(this, detail::reason_view(upstream));
}

template <typename T, BOOST_ASIO_COMPLETION_TOKEN_FOR(void(std::exception_ptr)) CompletionToken>
auto cancel_and_wait(const task_handle<T>& target, cancel_reason reason, CompletionToken&& token)
{
  return boost::asio::async_initiate<CompletionToken, cancel_and_wait_signature>(
      detail::initiate_cancel_and_wait<T>(target, std::move(reason)), token);
}

template <typename T, BOOST_ASIO_COMPLETION_TOKEN_FOR(void(std::exception_ptr)) CompletionToken>
auto cancel_and_wait(const std::vector<task_handle<T>>& targets, cancel_reason reason,
    CompletionToken&& token)
{
  return boost::asio::async_initiate<CompletionToken, cancel_and_wait_signature>(
      detail::initiate_cancel_and_wait_all<T>(targets, std::move(reason)), token);
}

template <typename T, typename Executor>
boost::asio::awaitable<T, Executor> cleanup(boost::asio::awaitable<T, Executor> work,
    escalation_policy policy, std::source_location where)
{
  if (!detail::current_task())
    throw boost::system::system_error(make_error_code(error::not_in_task), "arc::cleanup");
  return detail::run_cleanup(std::move(work), policy, where);
}

} // namespace arc

template <typename CompletionToken, typename... Signatures>
struct boost::asio::async_result<arc::guarded_t<CompletionToken>, Signatures...>
  : arc::detail::adapter_async_result<arc::detail::guard_policy, CompletionToken, Signatures...>
{
};

#endif
