// arc: Asio Reasoned Cancellation
#ifndef ARC_IMPL_BIND_CANCEL_HPP
#define ARC_IMPL_BIND_CANCEL_HPP

namespace arc {

template <typename CompletionToken>
bind_cancel_t<std::decay_t<CompletionToken>> bind_cancel(cancel_source source,
    CompletionToken&& token)
{
  return {std::move(source), std::forward<CompletionToken>(token)};
}

template <typename CompletionToken>
with_reason_t<std::decay_t<CompletionToken>> with_reason(cancel_source source,
    CompletionToken&& token)
{
  return {std::move(source), std::forward<CompletionToken>(token)};
}

namespace detail {

template <typename T, typename U>
using like_const_t = std::conditional_t<std::is_const_v<std::remove_reference_t<T>>, const U, U>;

} // namespace detail
} // namespace arc

template <typename CompletionToken, typename... Signatures>
struct boost::asio::async_result<arc::bind_cancel_t<CompletionToken>, Signatures...>
{
  template <typename Initiation, typename RawToken, typename... Args>
  static auto initiate(Initiation&& init, RawToken&& token, Args&&... args)
  {
    using init_type = arc::detail::initiate_bound<std::decay_t<Initiation>, false>;
    return boost::asio::async_initiate<
        arc::detail::like_const_t<RawToken, CompletionToken>, Signatures...>(
        init_type(std::forward<Initiation>(init), token.source_.state()),
        token.token_, std::forward<Args>(args)...);
  }
};

template <typename CompletionToken, typename... Signatures>
struct boost::asio::async_result<arc::with_reason_t<CompletionToken>, Signatures...>
{
  template <typename Initiation, typename RawToken, typename... Args>
  static auto initiate(Initiation&& init, RawToken&& token, Args&&... args)
  {
    using init_type = arc::detail::initiate_bound<std::decay_t<Initiation>, true>;
    return boost::asio::async_initiate<
        arc::detail::like_const_t<RawToken, CompletionToken>,
        arc::detail::append_reason_signature_t<Signatures>...>(
        init_type(std::forward<Initiation>(init), token.source_.state()),
        token.token_, std::forward<Args>(args)...);
  }
};

#endif
