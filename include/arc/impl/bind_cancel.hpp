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

} // namespace arc

template <typename CompletionToken, typename... Signatures>
struct boost::asio::async_result<arc::bind_cancel_t<CompletionToken>, Signatures...>
  : arc::detail::adapter_async_result<arc::detail::bind_policy<false>, CompletionToken,
        Signatures...>
{
};

template <typename CompletionToken, typename... Signatures>
struct boost::asio::async_result<arc::with_reason_t<CompletionToken>, Signatures...>
  : arc::detail::adapter_async_result<arc::detail::bind_policy<true>, CompletionToken,
        Signatures...>
{
};

#endif
