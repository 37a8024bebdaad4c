// arc: Asio Reasoned Cancellation
#ifndef ARC_IMPL_CANCEL_SOURCE_HPP
#define ARC_IMPL_CANCEL_SOURCE_HPP

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>

#include <utility>

namespace arc {

template <typename Executor>
  requires(boost::asio::execution::is_executor<Executor>::value
      || boost::asio::is_executor<Executor>::value)
cancel_source::cancel_source(const Executor& ex, cancel_source_options opts)
  : state_(detail::source_state::create(opts.history_limit, boost::asio::any_io_executor(ex)))
{
}

inline cancel_source::cancel_source(const cancel_source& other) noexcept : state_(other.state_)
{
  if (state_)
    state_->add_ref();
}

inline cancel_source::cancel_source(cancel_source&& other) noexcept
  : state_(std::exchange(other.state_, nullptr))
{
}

inline cancel_source& cancel_source::operator=(const cancel_source& other) noexcept
{
  cancel_source copy(other);
  std::swap(state_, copy.state_);
  return *this;
}

inline cancel_source& cancel_source::operator=(cancel_source&& other) noexcept
{
  cancel_source moved(std::move(other));
  std::swap(state_, moved.state_);
  return *this;
}

template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void(cancel_reason)) WaitToken>
auto cancel_source::async_wait(WaitToken&& token) const
{
  return boost::asio::async_initiate<WaitToken, void(cancel_reason)>(
      detail::initiate_source_wait(state_), token);
}

inline cancel_source::~cancel_source()
{
  if (state_)
    state_->release();
}

inline bool cancel_source::cancelled() const noexcept
{
  return state_ && state_->cancelled();
}

inline cancel_reason cancel_source::reason() const noexcept
{
  return state_ ? state_->reason() : cancel_reason();
}

inline std::size_t cancel_source::requests() const noexcept
{
  return state_ ? state_->requests() : 0;
}

inline bool cancel_source::has_executor() const noexcept
{
  return state_ && state_->has_executor();
}

} // namespace arc

#endif
