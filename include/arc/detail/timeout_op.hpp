// arc: Asio Reasoned Cancellation
#ifndef ARC_DETAIL_TIMEOUT_OP_HPP
#define ARC_DETAIL_TIMEOUT_OP_HPP

#include <arc/detail/bound_handler.hpp>
#include <arc/error.hpp>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/basic_waitable_timer.hpp>

#include <atomic>
#include <chrono>
#include <optional>
#include <source_location>
#include <type_traits>
#include <utility>

namespace arc::detail {

template <typename Clock, typename Duration>
cancel_reason::clock::time_point to_steady(const std::chrono::time_point<Clock, Duration>& tp)
{
  if constexpr (std::is_same_v<Clock, std::chrono::steady_clock>)
    return std::chrono::time_point_cast<std::chrono::steady_clock::duration>(tp);
  else
    return std::chrono::steady_clock::now()
      + std::chrono::duration_cast<std::chrono::steady_clock::duration>(tp - Clock::now());
}

// Shared by the completion wrapper and the timer's wait handler. The timer
// runs on the operation's (associated) executor; that executor need not
// serialise (use_future's runs on the system context's threads), so the stage
// is guarded, and the operation is bound to a locked op_node rather than a
// plain signal. The node also keeps an expiry that beats the operation's
// emplace as pending, posted once the handler is installed.
template <typename Clock, typename WaitTraits, typename Executor>
class timeout_state
{
public:
  enum class stage : unsigned char { waiting, timed_out, outer, done };

  timeout_state(const Executor& ex, cancel_reason r, std::source_location where)
    : timer_(ex), node_(op_node_impl<Executor>::create(nullptr, ex)), reason_(std::move(r)),
      where_(where)
  {
  }

  timeout_state(const timeout_state&) = delete;
  ~timeout_state() { node_->release(); }

  void add_ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept
  {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1)
      delete this;
  }

  node_slot slot() const noexcept { return node_slot(node_); }

  // The operation's initiating function has returned.
  void open() { node_->open(); }

  void expire()
  {
    {
      std::lock_guard lock(lock_);
      if (stage_ != stage::waiting)
        return;
      stage_ = stage::timed_out;
      if (!reason_)
        reason_ = after_ ? expired_timeout(to_steady(timer_.expiry()), *after_, where_)
                         : expired_timeout(to_steady(timer_.expiry()), {}, where_);
    }
    // reason_ is not written again once the stage has left `waiting`.
    node_->emit(reason_, asio::cancellation_type::terminal);
  }

  // A request through the token's own slot (see connect_own_slot).
  void emit(const cancel_reason& r, asio::cancellation_type_t t)
  {
    {
      std::lock_guard lock(lock_);
      if (stage_ == stage::waiting)
        stage_ = stage::outer;
    }
    node_->emit(r, t);
  }

  // Ends the race: returns true if the timeout fired first. Afterwards nothing
  // reaches the handler the operation left installed.
  bool finish() noexcept
  {
    bool timed_out;
    {
      std::lock_guard lock(lock_);
      timed_out = stage_ == stage::timed_out;
      stage_ = stage::done;
    }
    node_->disarm();
    return timed_out;
  }

  const cancel_reason& reason() const noexcept { return reason_; }

  asio::basic_waitable_timer<Clock, WaitTraits, Executor> timer_;
  std::optional<cancel_reason::clock::duration> after_;

private:
  op_node* node_;
  spin_lock lock_;
  cancel_reason reason_;
  std::source_location where_;
  stage stage_ = stage::waiting;
  std::atomic<std::size_t> refs_{1};
};

template <typename State>
class timeout_waiter
{
public:
  explicit timeout_waiter(State* s) noexcept : s_(s) { s_->add_ref(); }
  timeout_waiter(timeout_waiter&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  ~timeout_waiter()
  {
    if (s_)
      s_->release();
  }

  void operator()(boost::system::error_code ec)
  {
    if (!ec)
      s_->expire();
  }

private:
  State* s_;
};

template <typename Handler, typename State>
class timeout_handler
{
public:
  using arc_wrapped_handler = Handler;
  using cancellation_slot_type = node_slot;

  template <typename H>
  timeout_handler(H&& h, State* s) : handler_(std::forward<H>(h)), state_(s)
  {
  }
  timeout_handler(timeout_handler&& o) noexcept(std::is_nothrow_move_constructible_v<Handler>)
    : handler_(std::move(o.handler_)), state_(std::exchange(o.state_, nullptr)),
      forwarded_(o.forwarded_)
  {
  }
  ~timeout_handler()
  {
    // Not invoked (the io_context is being destroyed, or the initiation
    // threw): the timer's own pending handler holds the state and ends it.
    if (state_)
      state_->release();
  }

  cancellation_slot_type get_cancellation_slot() const noexcept { return state_->slot(); }

  void forward_own_slot() { forwarded_ = connect_own_slot(handler_, state_); }

  template <typename... Args>
  void operator()(Args&&... args)
  {
    State* s = std::exchange(state_, nullptr);
    const bool timed_out = s->finish();
    s->timer_.cancel();
    auto own = asio::get_associated_cancellation_slot(handler_);
    if (forwarded_)
      own.clear();
    if (timed_out)
      note_reason(own, s->reason());
    s->release();
    complete(timed_out, std::forward<Args>(args)...);
  }

  Handler handler_;

private:
  void complete(bool) { std::move(handler_)(); }

  template <typename First, typename... Rest>
  void complete(bool timed_out, First&& first, Rest&&... rest)
  {
    if constexpr (std::is_same_v<std::decay_t<First>, boost::system::error_code>)
    {
      boost::system::error_code ec = first;
      if (timed_out && is_cancellation(ec))
        ec = make_error_code(error::timed_out);
      std::move(handler_)(ec, std::forward<Rest>(rest)...);
    }
    else
      std::move(handler_)(std::forward<First>(first), std::forward<Rest>(rest)...);
  }

  State* state_;
  bool forwarded_ = false;
};

template <typename Initiation, typename Handler>
auto timer_executor(const Initiation& init, const Handler& h)
{
  if constexpr (requires { init.get_executor(); })
    return asio::get_associated_executor(h, init.get_executor());
  else
    return asio::get_associated_executor(h);
}

// Expiry is a duration (cancel_after) or a time point (cancel_at).
template <typename Initiation, typename Clock, typename WaitTraits, typename Expiry>
class initiate_timeout : public initiation_executor_base<Initiation>
{
public:
  template <typename I>
  initiate_timeout(I&& init, Expiry expiry, cancel_reason r, std::source_location where)
    : init_(std::forward<I>(init)), expiry_(expiry), reason_(std::move(r)), where_(where)
  {
  }

  template <typename I = Initiation>
  auto get_executor() const noexcept -> decltype(std::declval<const I&>().get_executor())
  {
    return init_.get_executor();
  }

  template <typename Handler, typename... Args>
  void operator()(Handler&& h, Args&&... args)
  {
    auto ex = timer_executor(init_, h);
    using state_type = timeout_state<Clock, WaitTraits, decltype(ex)>;
    auto* s = new state_type(ex, reason_, where_);
    timeout_handler<std::decay_t<Handler>, state_type> th(std::forward<Handler>(h), s);
    if constexpr (std::is_same_v<Expiry, typename Clock::duration>)
    {
      s->timer_.expires_after(expiry_);
      s->after_ = std::chrono::duration_cast<cancel_reason::clock::duration>(expiry_);
    }
    else
      s->timer_.expires_at(expiry_);
    th.forward_own_slot();
    s->timer_.async_wait(timeout_waiter<state_type>(s));
    s->add_ref(); // kept across the initiation, which may consume th
    struct release_on_exit
    {
      state_type* s;
      ~release_on_exit() { s->release(); }
    } guard{s};
    std::move(init_)(std::move(th), std::forward<Args>(args)...);
    s->open();
  }

private:
  Initiation init_;
  Expiry expiry_;
  cancel_reason reason_;
  std::source_location where_;
};

} // namespace arc::detail

#endif
