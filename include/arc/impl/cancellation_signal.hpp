// arc: Asio Reasoned Cancellation
#ifndef ARC_IMPL_CANCELLATION_SIGNAL_HPP
#define ARC_IMPL_CANCELLATION_SIGNAL_HPP

#include <utility>

namespace arc {

inline void cancellation_signal::emit(boost::asio::cancellation_type_t type)
{
  emit(reason::unspecified(), type);
}

inline void cancellation_signal::emit(const cancel_reason& reason,
    boost::asio::cancellation_type_t type)
{
  if (!handler_.has_handler())
    return;
  reason_ = reason;
  handler_.call(type);
}

inline cancellation_slot cancellation_signal::slot() noexcept
{
  return cancellation_slot(this);
}

template <typename CancellationHandler, typename... Args>
CancellationHandler& cancellation_slot::emplace(Args&&... args)
{
  return signal_->handler_.template emplace<CancellationHandler>(std::forward<Args>(args)...);
}

template <typename CancellationHandler>
std::decay_t<CancellationHandler>& cancellation_slot::assign(CancellationHandler&& handler)
{
  return emplace<std::decay_t<CancellationHandler>>(std::forward<CancellationHandler>(handler));
}

inline void cancellation_slot::clear() noexcept
{
  if (signal_)
    signal_->handler_.clear();
}

inline bool cancellation_slot::has_handler() const noexcept
{
  return signal_ && signal_->handler_.has_handler();
}

inline const cancel_reason& cancellation_slot::reason() const noexcept
{
  static const cancel_reason none;
  return signal_ ? signal_->reason_ : none;
}

} // namespace arc

#endif
