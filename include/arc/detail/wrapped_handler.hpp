// arc: Asio Reasoned Cancellation
#ifndef ARC_DETAIL_WRAPPED_HANDLER_HPP
#define ARC_DETAIL_WRAPPED_HANDLER_HPP

#include <boost/asio/associator.hpp>

// Every arc completion wrapper (it names its inner handler type as
// arc_wrapped_handler and keeps it in handler_) forwards every associator but
// the cancellation slot, which it provides itself, to the handler it wraps.
// (A wrapper that has no slot of its own forwards that too.)
template <template <typename, typename> class Associator, typename Wrapper,
    typename DefaultCandidate>
  requires requires { typename Wrapper::arc_wrapped_handler; }
struct boost::asio::associator<Associator, Wrapper, DefaultCandidate>
  : Associator<typename Wrapper::arc_wrapped_handler, DefaultCandidate>
{
  using inner = Associator<typename Wrapper::arc_wrapped_handler, DefaultCandidate>;

  static typename inner::type get(const Wrapper& h) noexcept { return inner::get(h.handler_); }

  static auto get(const Wrapper& h, const DefaultCandidate& c) noexcept
    -> decltype(inner::get(h.handler_, c))
  {
    return inner::get(h.handler_, c);
  }
};

#endif
