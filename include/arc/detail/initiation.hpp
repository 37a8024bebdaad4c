// arc: Asio Reasoned Cancellation
#ifndef ARC_DETAIL_INITIATION_HPP
#define ARC_DETAIL_INITIATION_HPP

#include <arc/cancel_reason.hpp>
#include <arc/detail/source_state.hpp>
#include <arc/error.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/system_executor.hpp>
#include <boost/system/system_error.hpp>

#include <concepts>
#include <exception>
#include <type_traits>
#include <utility>

namespace arc::detail {

// --- Choosing executors ------------------------------------------------------

// True if the handler really has an associated executor, as opposed to the
// default candidate Asio would hand out (system_executor up to Boost 1.89,
// inline_executor from 1.90, which can neither be posted to nor hold a timer).
template <typename Handler>
inline constexpr bool has_associated_executor = !requires {
  typename asio::associated_executor<Handler,
      asio::system_executor>::asio_associated_executor_is_unspecialised;
};

// True if @p e holds a system_error whose code is a cancellation (arc's
// cancellation codes, Asio's operation_aborted).
inline bool is_cancellation_exception(const std::exception_ptr& e) noexcept
{
  try
  {
    std::rethrow_exception(e);
  }
  catch (const boost::system::system_error& x)
  {
    return is_cancellation(x.code());
  }
  catch (...)
  {
    return false;
  }
}

// Where an operation's emits are delivered: the rule is stated once, in
// op_node.hpp. The candidate is never left to Asio's default (see
// has_associated_executor).
template <typename Initiation, typename Handler>
auto emit_executor(const Initiation& init, const Handler& h, source_state* src)
{
  if constexpr (requires { init.get_executor(); })
    return asio::get_associated_executor(h, init.get_executor());
  else if constexpr (has_associated_executor<Handler>)
    return asio::get_associated_executor(h, asio::system_executor());
  else
    return src ? src->executor() : asio::any_io_executor();
}

// --- Wrapping initiations ----------------------------------------------------

// Wrapping initiations expose the inner one's executor_type, as Asio's own
// initiations do: some tokens (use_promise) read it through associated_executor.
template <typename Initiation>
struct initiation_executor_base
{
};

template <typename Initiation>
  requires requires { typename Initiation::executor_type; }
struct initiation_executor_base<Initiation>
{
  using executor_type = typename Initiation::executor_type;
};

// The base of arc's wrapping initiations. Like Asio's own wrappers, it derives
// from the initiation it wraps, so that executor_type, get_executor() and any
// other member the operation's tokens look for come along. An initiation that
// cannot be a base (a function pointer, a final class) is held instead, and
// only its executor is forwarded.
template <typename Initiation>
class initiation_base : public Initiation
{
public:
  template <typename I>
    requires(!std::is_base_of_v<initiation_base, std::decay_t<I>>)
  explicit initiation_base(I&& init) : Initiation(std::forward<I>(init))
  {
  }

protected:
  Initiation& inner() & noexcept { return *this; }
  const Initiation& inner() const& noexcept { return *this; }
  Initiation&& inner() && noexcept { return std::move(*this); }
};

template <typename Initiation>
  requires(!std::is_class_v<Initiation> || std::is_final_v<Initiation>)
class initiation_base<Initiation> : public initiation_executor_base<Initiation>
{
public:
  template <typename I>
    requires(!std::is_base_of_v<initiation_base, std::decay_t<I>>)
  explicit initiation_base(I&& init) : init_(std::forward<I>(init))
  {
  }

  template <typename I = Initiation>
  auto get_executor() const noexcept -> decltype(std::declval<const I&>().get_executor())
  {
    return init_.get_executor();
  }

protected:
  Initiation& inner() & noexcept { return init_; }
  const Initiation& inner() const& noexcept { return init_; }
  Initiation&& inner() && noexcept { return std::move(init_); }

private:
  Initiation init_;
};

// Defined in bound_handler.hpp, which includes this header: start @p init with
// @p h bound to a fresh node of @p src.
template <bool AppendReason, typename Initiation, typename Handler, typename... Args>
void launch_bound(Initiation&& init, source_state* src, Handler&& h, Args&&... args);

// An initiation that binds the handler to a source, then runs the inner one.
template <typename Initiation, bool AppendReason>
class initiate_bound : public initiation_base<Initiation>
{
public:
  template <typename I>
  initiate_bound(I&& init, source_state* src)
    : initiation_base<Initiation>(std::forward<I>(init)), source_(src)
  {
    if (source_) // null for a moved-from source: the operation runs unbound
      source_->add_ref();
  }
  initiate_bound(const initiate_bound& o) : initiation_base<Initiation>(o), source_(o.source_)
  {
    if (source_)
      source_->add_ref();
  }
  initiate_bound(initiate_bound&& o) noexcept(
      std::is_nothrow_move_constructible_v<initiation_base<Initiation>>)
    : initiation_base<Initiation>(std::move(o)), source_(std::exchange(o.source_, nullptr))
  {
  }
  initiate_bound& operator=(const initiate_bound&) = delete;
  ~initiate_bound()
  {
    if (source_)
      source_->release();
  }

  template <typename Handler, typename... Args>
  void operator()(Handler&& h, Args&&... args) &&
  {
    launch_bound<AppendReason>(std::move(*this).inner(), source_, std::forward<Handler>(h),
        std::forward<Args>(args)...);
  }

  template <typename Handler, typename... Args>
  void operator()(Handler&& h, Args&&... args) const&
  {
    launch_bound<AppendReason>(this->inner(), source_, std::forward<Handler>(h),
        std::forward<Args>(args)...);
  }

private:
  source_state* source_;
};

// --- Signatures --------------------------------------------------------------

// void(Args...) -> void(Args..., cancel_reason)
template <typename Signature>
struct append_reason_signature;

template <typename R, typename... Args>
struct append_reason_signature<R(Args...)>
{
  using type = R(Args..., cancel_reason);
};

template <typename Signature>
using append_reason_signature_t = typename append_reason_signature<Signature>::type;

// The completion signature of a coroutine returning T, as co_spawn has it.
template <typename T>
struct spawn_signature
{
  using type = void(std::exception_ptr, T);
};

template <>
struct spawn_signature<void>
{
  using type = void(std::exception_ptr);
};

template <typename T>
using spawn_signature_t = typename spawn_signature<T>::type;

// The same for a function that returns an awaitable.
template <typename F>
using function_spawn_signature = spawn_signature_t<typename std::invoke_result_t<F>::value_type>;

template <typename T, typename U>
using like_const_t = std::conditional_t<std::is_const_v<std::remove_reference_t<T>>, const U, U>;

// --- One async_result for every arc token adapter ----------------------------

// An adapter's Policy says how it wraps the initiation and which signatures
// the token it wraps completes with:
//   template <typename Signature> using signature = ...;
//   template <typename... Signatures, typename Initiation, typename Token>
//   static auto wrap(Initiation&&, const Token& adapter);
// The specialisation derives from the wrapped token's async_result, as Asio's
// own adapters do, so that its return_type (which Beast 1.81 reads) and the
// rest come along. initiate's return type is spelt out rather than deduced:
// a deduced one would make C++20's completion_token_for checks instantiate
// the whole chain of initiations with Asio's executor-less archetype.
template <typename Policy, typename CompletionToken, typename... Signatures>
struct adapter_async_result
  : asio::async_result<CompletionToken, typename Policy::template signature<Signatures>...>
{
  template <typename Initiation, typename RawToken, typename... Args>
  static auto initiate(Initiation&& init, RawToken&& token, Args&&... args)
    -> decltype(asio::async_initiate<like_const_t<RawToken, CompletionToken>,
        typename Policy::template signature<Signatures>...>(
        Policy::template wrap<Signatures...>(std::forward<Initiation>(init), token),
        token.token_, std::forward<Args>(args)...))
  {
    return asio::async_initiate<like_const_t<RawToken, CompletionToken>,
        typename Policy::template signature<Signatures>...>(
        Policy::template wrap<Signatures...>(std::forward<Initiation>(init), token),
        token.token_, std::forward<Args>(args)...);
  }
};

// An initiation that can bind itself to a source, without a node of its own
// in between (arc::co_spawn's: its task becomes a child of the source).
template <typename Initiation>
concept binds_to_source = requires(const Initiation& init, source_state* src) {
  { init.arc_bind_source(src) } -> std::same_as<Initiation>;
};

// bind_cancel (AppendReason = false) and with_reason (true).
template <bool AppendReason>
struct bind_policy
{
  template <typename Signature>
  using signature =
      std::conditional_t<AppendReason, append_reason_signature_t<Signature>, Signature>;

  template <typename... Signatures, typename Initiation, typename Token>
  static auto wrap(Initiation&& init, const Token& token)
  {
    if constexpr (!AppendReason && binds_to_source<std::decay_t<Initiation>>)
      return init.arc_bind_source(token.source_.state());
    else
      return initiate_bound<std::decay_t<Initiation>, AppendReason>(
          std::forward<Initiation>(init), token.source_.state());
  }
};

} // namespace arc::detail

#endif
