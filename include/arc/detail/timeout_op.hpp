// arc: Asio Reasoned Cancellation
#ifndef ARC_DETAIL_TIMEOUT_OP_HPP
#define ARC_DETAIL_TIMEOUT_OP_HPP

#include <arc/detail/bound_handler.hpp>
#include <arc/detail/initiation.hpp>
#include <arc/detail/op_node.hpp>
#include <arc/detail/reason_rep.hpp>
#include <arc/detail/spin_lock.hpp>
#include <arc/error.hpp>

#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/associator.hpp>
#include <boost/asio/basic_waitable_timer.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/recycling_allocator.hpp>
#include <boost/asio/system_executor.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <source_location>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

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

// --- What a completion says --------------------------------------------------

// (is_cancellation_exception: initiation.hpp)

// Read from the completion's first argument, by the signature's type, not by
// the C++ type the operation happened to pass: an error code (anything
// convertible to boost::system::error_code) or an exception_ptr holding a
// system_error. Anything else cannot tell.
enum class outcome : unsigned char { unknown, cancelled, other };

template <typename T>
outcome outcome_of(const T& first) noexcept
{
  if constexpr (std::is_same_v<T, std::exception_ptr>)
    return first && is_cancellation_exception(first) ? outcome::cancelled : outcome::other;
  else if constexpr (std::is_convertible_v<const T&, boost::system::error_code>)
    return is_cancellation(boost::system::error_code(first)) ? outcome::cancelled
                                                             : outcome::other;
  else
    return outcome::unknown;
}

// The cancellation @p first reports becomes a timeout.
template <typename T>
void report_timeout(T& first, const cancel_reason& r)
{
  const boost::system::error_code ec = make_error_code(error::timed_out);
  if constexpr (std::is_same_v<T, std::exception_ptr>)
    first = std::make_exception_ptr(cancelled_error(ec, r));
  else if constexpr (std::is_constructible_v<T, const boost::system::error_code&>)
    first = T(ec);
}

// The values a completion with @p Signature delivers, as stored until the
// handler runs.
template <typename Signature>
struct completion_values;

template <typename R, typename... Args>
struct completion_values<R(Args...)>
{
  using type = std::tuple<std::decay_t<Args>...>;
};

// --- The operation state -----------------------------------------------------

template <typename Op>
class timeout_completion;
template <typename Op>
class timeout_waiter;

// One allocation, from the handler's associated allocator, holds everything a
// timed operation needs: the user's handler, the timer, the node the operation
// installs its cancellation handler in (this object is that op_node; it has no
// source), and the completion's values. As with Asio's own cancel_after, the
// handler runs when both the operation and the timer's wait have completed, so
// the memory is returned before it runs (unless a posted emit still holds the
// node), and it runs through the completion of whichever came last, on its own
// associated executor.
//
// Threads: the timer lives on the I/O executor (the initiation's), but its
// wait handler, like the operation's, forwards the user's associated executor,
// so an expiry is emitted where the operation runs its steps. That executor
// need not serialise (use_future's runs on the system context's threads), so
// the race between expiry, an outer request and completion is settled under
// stage_lock_, and the two completions meet on an atomic count.
template <typename Handler, typename Timer, typename... Signatures>
class timeout_op final : public op_node
{
public:
  using handler_type = Handler;
  // Timer is the timer type (the operation holds one), or a reference to the
  // caller's timer (cancel_after(timer, …)).
  using timer_type = std::remove_reference_t<Timer>;
  using timer_executor_type = typename timer_type::executor_type;
  using allocator_type = typename std::allocator_traits<asio::associated_allocator_t<Handler,
      asio::recycling_allocator<void>>>::template rebind_alloc<timeout_op>;

  template <typename... Args>
  static constexpr std::size_t payload_index() noexcept
  {
    constexpr bool fits[] = {
        std::is_constructible_v<typename completion_values<Signatures>::type, Args...>...};
    for (std::size_t i = 0; i < sizeof...(Signatures); ++i)
      if (fits[i])
        return i + 1;
    return 0;
  }

  // @p timer_arg is the timer's executor, or the caller's timer.
  template <typename H, typename TimerArg>
  static timeout_op* create(H&& h, TimerArg&& timer_arg, cancel_reason r,
      std::source_location where, asio::cancellation_type_t type)
  {
    allocator_type alloc(asio::get_associated_allocator(h, asio::recycling_allocator<void>()));
    timeout_op* p = std::allocator_traits<allocator_type>::allocate(alloc, 1);
    try
    {
      return ::new (static_cast<void*>(p))
          timeout_op(std::forward<H>(h), std::forward<TimerArg>(timer_arg), std::move(r), where,
              type, alloc);
    }
    catch (...)
    {
      std::allocator_traits<allocator_type>::deallocate(alloc, p, 1);
      throw;
    }
  }

  timeout_op(const timeout_op&) = delete;
  timeout_op& operator=(const timeout_op&) = delete;

  const Handler& handler() const noexcept { return *handler_; }

  // Arm the timer and connect the handler's own slot. Until the initiation
  // hands the operation a timeout_completion, that object's destructor is
  // what ends the operation's part.
  template <typename Expiry>
  void start(const Expiry& expiry)
  {
    if constexpr (std::is_same_v<Expiry, typename timer_type::duration>)
    {
      timer_.expires_after(expiry);
      after_ = std::chrono::duration_cast<cancel_reason::clock::duration>(expiry);
    }
    else
      timer_.expires_at(expiry);
    forwarded_ = connect_own_slot(*handler_, this);
    timer_.async_wait(timeout_waiter<timeout_op>(this));
  }

  // The timer expired.
  void expire()
  {
    {
      std::lock_guard lock(stage_lock_);
      if (stage_ != stage::waiting)
        return;
      stage_ = stage::timed_out;
      if (!timeout_reason_)
        timeout_reason_ = after_ ? expired_timeout(to_steady(timer_.expiry()), *after_, where_)
                                 : expired_timeout(to_steady(timer_.expiry()), {}, where_);
    }
    // timeout_reason_ is not written again once the stage has left `waiting`.
    op_node::emit(timeout_reason_, cancel_type_);
  }

  // A request through the handler's own slot (see connect_own_slot).
  void emit(const cancel_reason& r, asio::cancellation_type_t t)
  {
    {
      std::lock_guard lock(stage_lock_);
      if (stage_ == stage::waiting)
        stage_ = stage::outer;
    }
    op_node::emit(r, t);
  }

  // The operation completed.
  template <typename... Args>
  void complete_op(Args&&... args)
  {
    auto& values = payload_.template emplace<payload_index<Args&&...>()>(std::forward<Args>(args)...);
    const bool timed_out = finish();
    auto own = asio::get_associated_cancellation_slot(*handler_);
    if (forwarded_)
      own.clear();
    outcome o = outcome::unknown;
    if constexpr (std::tuple_size_v<std::remove_reference_t<decltype(values)>> != 0)
      o = outcome_of(std::get<0>(values));
    if (o != outcome::other)
    {
      if (timed_out)
      {
        if constexpr (std::tuple_size_v<std::remove_reference_t<decltype(values)>> != 0)
          if (o == outcome::cancelled)
            report_timeout(std::get<0>(values), timeout_reason_);
        detail::explain_completion(own, timeout_reason_);
      }
      else if (const cancel_reason& r = reason())
        // An enclosing adapter noted why (a cancel_after around this one), or
        // a request came through the own slot: pass it on.
        detail::explain_completion(own, r);
    }
    timer_.cancel();
    finish_part(true);
  }

  // One of the two completions (operation, timer wait) is done: invoked, or
  // destroyed without being invoked. The last one delivers or abandons.
  void finish_part(bool invoked) noexcept
  {
    if (parts_.fetch_sub(1, std::memory_order_acq_rel) != 1)
      return;
    if (invoked && payload_.index() != 0)
      deliver_completion();
    else
      abandon();
  }

private:
  enum class stage : unsigned char { waiting, timed_out, outer, done };

  template <typename H, typename TimerArg>
  timeout_op(H&& h, TimerArg&& timer_arg, cancel_reason r, std::source_location where,
      asio::cancellation_type_t type, const allocator_type& alloc)
    : op_node(nullptr), handler_(std::in_place, std::forward<H>(h)),
      timer_(std::forward<TimerArg>(timer_arg)), timeout_reason_(std::move(r)), where_(where),
      cancel_type_(type), alloc_(alloc)
  {
  }

  ~timeout_op() = default;

  // Ends the race: returns true if the timeout fired first. Afterwards nothing
  // reaches the handler the operation left installed.
  bool finish() noexcept
  {
    bool timed_out;
    {
      std::lock_guard lock(stage_lock_);
      timed_out = stage_ == stage::timed_out;
      stage_ = stage::done;
    }
    disarm();
    return timed_out;
  }

  void deliver_completion() noexcept
  {
    Handler h(std::move(*handler_));
    payload_type values(std::move(payload_));
    release(); // the memory goes back before the handler runs
    std::visit(
        [&h](auto& v) {
          if constexpr (!std::is_same_v<std::decay_t<decltype(v)>, std::monostate>)
            std::apply(std::move(h), std::move(v));
        },
        values);
  }

  void abandon() noexcept
  {
    // The io_context is being destroyed with the operation pending, or the
    // initiation threw. The handler is destroyed now, not with the memory: a
    // forwarder in its own slot (a coroutine's, say) holds a reference to
    // this object, and the handler may own that slot.
    finish();
    handler_.reset();
    payload_ = std::monostate();
    release();
  }

  // A pending emit (an expiry before the operation installed its handler):
  // called from open() or emplace(), while the operation is pending, so the
  // handler is here. Posted where the operation runs its steps.
  void schedule(bool never_inline) override
  {
    auto ex = asio::get_associated_executor(*handler_, timer_.get_executor());
    if (!never_inline && running_here(ex))
      op_node::deliver();
    else
      asio::post(ex, node_emitter(this));
  }

  void destroy() noexcept override
  {
    allocator_type alloc(alloc_);
    this->~timeout_op();
    std::allocator_traits<allocator_type>::deallocate(alloc, this, 1);
  }

  using payload_type =
      std::variant<std::monostate, typename completion_values<Signatures>::type...>;

  std::optional<Handler> handler_;
  Timer timer_;
  payload_type payload_;
  std::optional<cancel_reason::clock::duration> after_;
  cancel_reason timeout_reason_;
  std::source_location where_;
  asio::cancellation_type_t cancel_type_;
  std::atomic<unsigned char> parts_{2};
  spin_lock stage_lock_;
  stage stage_ = stage::waiting;
  bool forwarded_ = false;
  [[no_unique_address]] allocator_type alloc_;
};

// What the operation sees as its completion handler.
template <typename Op>
class timeout_completion
{
public:
  using arc_timeout_part = Op;
  using cancellation_slot_type = node_slot;

  explicit timeout_completion(Op* op) noexcept : op_(op) {}
  timeout_completion(timeout_completion&& o) noexcept : op_(std::exchange(o.op_, nullptr)) {}
  timeout_completion& operator=(timeout_completion&&) = delete;
  ~timeout_completion()
  {
    if (op_)
      op_->finish_part(false);
  }

  cancellation_slot_type get_cancellation_slot() const noexcept { return node_slot(op_); }

  template <typename... Args>
    requires(Op::template payload_index<Args&&...>() != 0)
  void operator()(Args&&... args)
  {
    std::exchange(op_, nullptr)->complete_op(std::forward<Args>(args)...);
  }

  Op* op_;
};

// The timer's wait handler. It has no cancellation slot of its own.
template <typename Op>
class timeout_waiter
{
public:
  using arc_timeout_part = Op;
  using cancellation_slot_type = asio::cancellation_slot;

  explicit timeout_waiter(Op* op) noexcept : op_(op) {}
  timeout_waiter(timeout_waiter&& o) noexcept : op_(std::exchange(o.op_, nullptr)) {}
  timeout_waiter& operator=(timeout_waiter&&) = delete;
  ~timeout_waiter()
  {
    if (op_)
      op_->finish_part(false);
  }

  cancellation_slot_type get_cancellation_slot() const noexcept { return {}; }

  void operator()(const boost::system::error_code& ec)
  {
    Op* op = std::exchange(op_, nullptr);
    if (!ec)
      op->expire();
    op->finish_part(true);
  }

  Op* op_;
};

// The timer runs on the I/O executor, as in Asio's cancel_after. An
// initiation without one (Beast 1.81's, a user's lambda) leaves the handler's
// own executor; with neither there is nothing to run a timer on.
template <typename Initiation, typename Handler>
auto timer_executor(const Initiation& init, const Handler& h)
{
  if constexpr (requires { init.get_executor(); })
    return init.get_executor();
  else
  {
    static_assert(has_associated_executor<Handler>,
        "arc::cancel_after/cancel_at: neither the operation's initiation nor the completion "
        "handler has an executor to run the timer on; bind one with asio::bind_executor");
    return asio::get_associated_executor(h, asio::system_executor());
  }
}

// Expiry is a duration (cancel_after) or a time point (cancel_at). UserTimer
// is the caller's timer type (cancel_after(timer, …)), or void: the operation
// then holds a timer of its own.
template <typename Initiation, typename Clock, typename WaitTraits, typename Expiry,
    typename UserTimer, typename... Signatures>
class initiate_timeout : public initiation_base<Initiation>
{
public:
  using user_timer_ptr = std::conditional_t<std::is_void_v<UserTimer>, std::nullptr_t, UserTimer*>;

  template <typename I>
  initiate_timeout(I&& init, Expiry expiry, cancel_reason r, std::source_location where,
      asio::cancellation_type_t type, user_timer_ptr timer)
    : initiation_base<Initiation>(std::forward<I>(init)), expiry_(expiry), reason_(std::move(r)),
      where_(where), type_(type), timer_(timer)
  {
  }

  template <typename Handler, typename... Args>
  void operator()(Handler&& h, Args&&... args) &&
  {
    launch(std::move(*this).inner(), std::forward<Handler>(h), std::forward<Args>(args)...);
  }

  template <typename Handler, typename... Args>
  void operator()(Handler&& h, Args&&... args) const&
  {
    launch(this->inner(), std::forward<Handler>(h), std::forward<Args>(args)...);
  }

private:
  template <typename Init, typename Handler, typename... Args>
  void launch(Init&& init, Handler&& h, Args&&... args) const
  {
    if constexpr (std::is_void_v<UserTimer>)
    {
      auto ex = timer_executor(init, h);
      using op_type = timeout_op<std::decay_t<Handler>,
          asio::basic_waitable_timer<Clock, WaitTraits, decltype(ex)>, Signatures...>;
      run(op_type::create(std::forward<Handler>(h), ex, reason_, where_, type_),
          std::forward<Init>(init), std::forward<Args>(args)...);
    }
    else
    {
      using op_type = timeout_op<std::decay_t<Handler>, UserTimer&, Signatures...>;
      run(op_type::create(std::forward<Handler>(h), *timer_, reason_, where_, type_),
          std::forward<Init>(init), std::forward<Args>(args)...);
    }
  }

  template <typename Op, typename Init, typename... Args>
  void run(Op* op, Init&& init, Args&&... args) const
  {
    using op_type = Op;
    timeout_completion<op_type> completion(op);
    op->start(expiry_);
    op->add_ref(); // kept across the initiation
    struct release_on_exit
    {
      op_type* op;
      ~release_on_exit() { op->release(); }
    } guard{op};
    std::forward<Init>(init)(std::move(completion), std::forward<Args>(args)...);
    // Nothing reaches the operation before its initiating function returns.
    op->open();
  }

  Expiry expiry_;
  cancel_reason reason_;
  std::source_location where_;
  asio::cancellation_type_t type_;
  user_timer_ptr timer_;
};

template <typename Clock, typename WaitTraits, typename Expiry, typename UserTimer = void>
struct timeout_policy
{
  template <typename Signature>
  using signature = Signature;

  template <typename... Signatures, typename Initiation, typename Token>
  static initiate_timeout<std::decay_t<Initiation>, Clock, WaitTraits, Expiry, UserTimer,
      Signatures...>
  wrap(Initiation&& init, const Token& token)
  {
    if constexpr (std::is_void_v<UserTimer>)
      return {std::forward<Initiation>(init), token.expiry_, token.reason_, token.where_,
          token.cancel_type_, nullptr};
    else
      return {std::forward<Initiation>(init), token.expiry_, token.reason_, token.where_,
          token.cancel_type_, token.timer_};
  }
};

} // namespace arc::detail

// Both of a timed operation's completions (they name their operation as
// arc_timeout_part) forward every associator but the cancellation slot (each
// has its own) to the user's handler, as Asio's timed_cancel_op does: the
// operation and the timer both run their steps, and allocate, as the handler
// asks.
template <template <typename, typename> class Associator, typename Part,
    typename DefaultCandidate>
  requires requires { typename Part::arc_timeout_part; }
struct boost::asio::associator<Associator, Part, DefaultCandidate>
  : Associator<typename Part::arc_timeout_part::handler_type, DefaultCandidate>
{
  using inner = Associator<typename Part::arc_timeout_part::handler_type, DefaultCandidate>;

  static typename inner::type get(const Part& h) noexcept { return inner::get(h.op_->handler()); }

  static auto get(const Part& h, const DefaultCandidate& c) noexcept
    -> decltype(inner::get(h.op_->handler(), c))
  {
    return inner::get(h.op_->handler(), c);
  }
};

#endif
