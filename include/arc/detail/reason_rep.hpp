// arc: Asio Reasoned Cancellation
#ifndef ARC_DETAIL_REASON_REP_HPP
#define ARC_DETAIL_REASON_REP_HPP

#include <arc/cancel_reason.hpp>
#include <arc/detail/intrusive.hpp>

#include <any>
#include <atomic>
#include <string>
#include <string_view>

namespace arc::detail {

// The file name without its directories, as reasons and reports print it.
std::string_view base_name(std::string_view file) noexcept;


// The shared, immutable body of a cancel_reason. Only refs_ ever changes.
struct reason_rep
{
  mutable ref_count refs_;
  reason_kind kind_ = reason_kind::user;
  int signo_ = 0;
  std::source_location where_{};
  cancel_reason::clock::time_point when_{};
  cancel_reason::clock::time_point deadline_{};
  cancel_reason::clock::duration after_{}; // the timeout as given, if has_after_
  bool has_after_ = false;
  std::string message_;
  cancel_reason cause_;
  std::any tag_;
};

struct reason_fields
{
  reason_kind kind;
  std::string_view message{};
  std::source_location where{};
  cancel_reason::clock::time_point deadline{};
  int signo = 0;
  cancel_reason cause{};
  // When set, deadline is when() + after, so the printed timeout is exact.
  bool relative = false;
  cancel_reason::clock::duration after{};
};

// Defined in src/cancel_reason.cpp; the tag, if any, is moved in.
cancel_reason make_reason(reason_fields f, std::any tag = {});

// A timeout that fired: its deadline, and the duration it was set with.
cancel_reason expired_timeout(cancel_reason::clock::time_point deadline,
    cancel_reason::clock::duration after, std::source_location where);

} // namespace arc::detail

#endif
