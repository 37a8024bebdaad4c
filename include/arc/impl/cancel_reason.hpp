// arc: Asio Reasoned Cancellation
#ifndef ARC_IMPL_CANCEL_REASON_HPP
#define ARC_IMPL_CANCEL_REASON_HPP

#include <arc/detail/reason_rep.hpp>

#include <any>
#include <utility>

namespace arc {

inline cancel_reason::cancel_reason(const cancel_reason& other) noexcept
  : rep_(other.rep_)
{
  if (rep_)
    rep_->refs_.add();
}

inline cancel_reason::cancel_reason(cancel_reason&& other) noexcept
  : rep_(std::exchange(other.rep_, nullptr))
{
}

inline cancel_reason& cancel_reason::operator=(const cancel_reason& other) noexcept
{
  // Re-assigning the same event is common (a source re-emits its first
  // reason); it costs no atomic operation.
  if (rep_ != other.rep_)
  {
    cancel_reason copy(other);
    std::swap(rep_, copy.rep_);
  }
  return *this;
}

inline cancel_reason& cancel_reason::operator=(cancel_reason&& other) noexcept
{
  if (this != &other)
  {
    cancel_reason old(std::move(*this));
    rep_ = std::exchange(other.rep_, nullptr);
  }
  return *this;
}

namespace detail {
void destroy_reason(reason_rep* rep) noexcept;
} // namespace detail

inline cancel_reason::~cancel_reason()
{
  // acq_rel: the last owner must see every write made through other owners.
  if (rep_ && rep_->refs_.release())
    detail::destroy_reason(rep_);
}

inline bool cancel_reason::empty() const noexcept { return rep_ == nullptr; }

inline cancel_reason::operator bool() const noexcept { return rep_ != nullptr; }

inline reason_kind cancel_reason::kind() const noexcept
{
  return rep_ ? rep_->kind_ : reason_kind::unspecified;
}

inline std::string_view cancel_reason::message() const noexcept
{
  return rep_ ? std::string_view(rep_->message_) : std::string_view();
}

inline std::source_location cancel_reason::where() const noexcept
{
  return rep_ ? rep_->where_ : std::source_location();
}

inline cancel_reason::clock::time_point cancel_reason::when() const noexcept
{
  return rep_ ? rep_->when_ : clock::time_point();
}

inline cancel_reason::clock::time_point cancel_reason::deadline() const noexcept
{
  return rep_ ? rep_->deadline_ : clock::time_point();
}

inline int cancel_reason::signal_number() const noexcept
{
  return rep_ ? rep_->signo_ : 0;
}

template <typename T>
const T* cancel_reason::tag() const noexcept
{
  return rep_ ? std::any_cast<T>(&rep_->tag_) : nullptr;
}

inline bool cancel_reason::has_tag() const noexcept
{
  return rep_ && rep_->tag_.has_value();
}

namespace reason {

template <tag_type Tag>
cancel_reason user(std::string_view message, Tag&& tag, std::source_location where)
{
  return detail::make_reason({reason_kind::user, message, where},
      std::any(std::forward<Tag>(tag)));
}

template <tag_type Tag>
cancel_reason timeout(cancel_reason::clock::duration after, Tag&& tag,
    std::source_location where)
{
  return detail::make_reason(
      {reason_kind::timeout, {}, where, {}, 0, {}, true, after},
      std::any(std::forward<Tag>(tag)));
}

template <tag_type Tag>
cancel_reason timeout(cancel_reason::clock::time_point deadline, Tag&& tag,
    std::source_location where)
{
  return detail::make_reason({reason_kind::timeout, {}, where, deadline},
      std::any(std::forward<Tag>(tag)));
}

template <tag_type Tag>
cancel_reason shutdown(std::string_view message, Tag&& tag, std::source_location where)
{
  return detail::make_reason({reason_kind::shutdown, message, where},
      std::any(std::forward<Tag>(tag)));
}

template <tag_type Tag>
cancel_reason signal(int signo, Tag&& tag, std::source_location where)
{
  return detail::make_reason({reason_kind::signal, {}, where, {}, signo},
      std::any(std::forward<Tag>(tag)));
}

} // namespace reason
} // namespace arc

#endif
