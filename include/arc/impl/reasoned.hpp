// arc: Asio Reasoned Cancellation
#ifndef ARC_IMPL_REASONED_HPP
#define ARC_IMPL_REASONED_HPP

#include <arc/detail/bound_handler.hpp>
#include <arc/detail/initiation.hpp>
#include <arc/detail/task_state.hpp>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>

#include <exception>
#include <type_traits>
#include <utility>

namespace arc::detail {

// void(error_code, Ts...) -> void(exception_ptr, Ts...); others unchanged.
template <typename Signature>
struct reasoned_signature
{
  using type = Signature;
};

template <typename R, typename... Ts>
struct reasoned_signature<R(boost::system::error_code, Ts...)>
{
  using type = R(std::exception_ptr, Ts...);
};

template <typename R, typename... Ts>
struct reasoned_signature<R(const boost::system::error_code&, Ts...)>
{
  using type = R(std::exception_ptr, Ts...);
};

template <typename Signature>
using reasoned_signature_t = typename reasoned_signature<Signature>::type;

// Why the operation @p h belongs to was cancelled (see reasoned_t).
template <typename Handler>
cancel_reason reason_for_completion(const Handler& h)
{
  if (const cancel_reason* r = completing_reason(); r && *r)
    return *r;
  auto slot = asio::get_associated_cancellation_slot(h);
  if constexpr (requires {
                  { slot.reason() } -> std::convertible_to<const cancel_reason&>;
                })
    if (const cancel_reason& r = slot.reason(); r)
      return r;
  if (task_state* t = current_task())
    return t->reason();
  return {};
}

// The exception a failed operation reports through reasoned_t.
inline std::exception_ptr make_failure(const boost::system::error_code& ec, cancel_reason why)
{
  if (!is_cancellation(ec))
    return std::make_exception_ptr(boost::system::system_error(ec));
  // An arc code says more than the reason's kind (cancel_after's timed_out
  // while the task was cancelled for something else): it is kept.
  if (ec.category() == error_category() || !why)
    return std::make_exception_ptr(cancelled_error(ec, std::move(why)));
  return std::make_exception_ptr(cancelled_error(std::move(why)));
}

template <typename Handler>
class reasoned_handler
{
public:
  using arc_wrapped_handler = Handler;

  template <typename H>
  explicit reasoned_handler(H&& h) : handler_(std::forward<H>(h))
  {
  }

  template <typename... Ts>
  void operator()(const boost::system::error_code& ec, Ts&&... ts)
  {
    std::exception_ptr e;
    if (ec) [[unlikely]]
      e = make_failure(ec, reason_for_completion(handler_));
    // The reason was for this operation: none leaks into what the handler runs.
    completing_reason_scope none(nullptr);
    std::move(handler_)(std::move(e), std::forward<Ts>(ts)...);
  }

  template <typename T, typename... Ts>
    requires(!std::is_convertible_v<T &&, const boost::system::error_code&>)
  void operator()(T&& t, Ts&&... ts)
  {
    std::move(handler_)(std::forward<T>(t), std::forward<Ts>(ts)...);
  }

  void operator()() { std::move(handler_)(); }

  Handler handler_;
};

template <typename Initiation>
class initiate_reasoned : public initiation_base<Initiation>
{
public:
  using initiation_base<Initiation>::initiation_base;

  template <typename Handler, typename... Args>
  void operator()(Handler&& h, Args&&... args) &&
  {
    std::move(*this).inner()(reasoned_handler<std::decay_t<Handler>>(std::forward<Handler>(h)),
        std::forward<Args>(args)...);
  }

  template <typename Handler, typename... Args>
  void operator()(Handler&& h, Args&&... args) const&
  {
    this->inner()(reasoned_handler<std::decay_t<Handler>>(std::forward<Handler>(h)),
        std::forward<Args>(args)...);
  }
};

struct reasoned_policy
{
  template <typename Signature>
  using signature = reasoned_signature_t<Signature>;

  template <typename... Signatures, typename Initiation, typename Token>
  static initiate_reasoned<std::decay_t<Initiation>> wrap(Initiation&& init, const Token&)
  {
    return initiate_reasoned<std::decay_t<Initiation>>(std::forward<Initiation>(init));
  }
};

} // namespace arc::detail

template <typename CompletionToken, typename... Signatures>
struct boost::asio::async_result<arc::reasoned_t<CompletionToken>, Signatures...>
  : arc::detail::adapter_async_result<arc::detail::reasoned_policy, CompletionToken,
        Signatures...>
{
};

#endif
