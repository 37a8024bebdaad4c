// arc: Asio Reasoned Cancellation
#include <arc/cancel_reason.hpp>
#include <arc/detail/reason_rep.hpp>
#include <arc/error.hpp>

#include <boost/asio/recycling_allocator.hpp>

#include <csignal>
#include <cstdio>
#include <ostream>
#include <string>
#include <utility>

namespace arc {
namespace detail {

// Reasons come from Asio's recycling allocator: cached per thread inside
// run(), as Asio's own handler memory is.
using rep_allocator = boost::asio::recycling_allocator<reason_rep>;

cancel_reason make_reason(reason_fields f, std::any tag)
{
  rep_allocator alloc;
  reason_rep* rep = alloc.allocate(1);
  try
  {
    ::new (rep) reason_rep;
  }
  catch (...)
  {
    alloc.deallocate(rep, 1);
    throw;
  }
  cancel_reason result(rep); // owns it from here: nothing below can leak it
  rep->kind_ = f.kind;
  rep->signo_ = f.signo;
  rep->where_ = f.where;
  rep->when_ = cancel_reason::clock::now();
  rep->deadline_ = f.relative ? rep->when_ + f.after : f.deadline;
  rep->after_ = f.after;
  rep->has_after_ = f.relative || f.after != cancel_reason::clock::duration::zero();
  rep->message_.assign(f.message);
  rep->cause_ = std::move(f.cause);
  rep->tag_ = std::move(tag);
  return result;
}

cancel_reason expired_timeout(cancel_reason::clock::time_point deadline,
    cancel_reason::clock::duration after, std::source_location where)
{
  return make_reason({reason_kind::timeout, {}, where, deadline, 0, {}, false, after});
}

void destroy_reason(reason_rep* rep) noexcept
{
  // A long cause chain is released iteratively, not by recursion.
  while (rep)
  {
    reason_rep* next = nullptr;
    if (rep->cause_.rep() && rep->cause_.rep()->refs_.release())
      next = const_cast<reason_rep*>(rep->cause_.rep());
    // The reference was released above; forget it without a second release.
    new (&rep->cause_) cancel_reason();
    rep->~reason_rep();
    rep_allocator().deallocate(rep, 1);
    rep = next;
  }
}

std::string_view base_name(std::string_view file) noexcept
{
  const auto slash = file.find_last_of("/\\");
  return slash == std::string_view::npos ? file : file.substr(slash + 1);
}

} // namespace detail

std::string_view to_string(reason_kind k) noexcept
{
  switch (k)
  {
  case reason_kind::user: return "user";
  case reason_kind::timeout: return "timeout";
  case reason_kind::shutdown: return "shutdown";
  case reason_kind::signal: return "signal";
  case reason_kind::parent: return "parent";
  case reason_kind::shield_deadline: return "shield_deadline";
  case reason_kind::escalated: return "escalated";
  case reason_kind::unspecified: return "unspecified";
  }
  return "unknown";
}

const cancel_reason& cancel_reason::cause() const noexcept
{
  static const cancel_reason none;
  return rep_ ? rep_->cause_ : none;
}

const cancel_reason& cancel_reason::root() const noexcept
{
  const cancel_reason* r = this;
  while (r->rep_ && r->rep_->cause_)
    r = &r->rep_->cause_;
  return *r;
}

boost::system::error_code cancel_reason::code() const noexcept
{
  if (!rep_)
    return {};
  switch (rep_->kind_)
  {
  case reason_kind::user: return make_error_code(error::cancelled);
  case reason_kind::timeout: return make_error_code(error::timed_out);
  case reason_kind::shutdown: return make_error_code(error::shutdown);
  case reason_kind::signal: return make_error_code(error::signalled);
  case reason_kind::parent: return make_error_code(error::parent_cancelled);
  case reason_kind::shield_deadline: return make_error_code(error::shield_deadline_exceeded);
  case reason_kind::escalated: return make_error_code(error::escalated);
  case reason_kind::unspecified: return make_error_code(error::cancelled);
  }
  return make_error_code(error::cancelled);
}

namespace {

std::string_view signal_name(int signo) noexcept
{
  switch (signo)
  {
  case SIGINT: return "SIGINT";
  case SIGTERM: return "SIGTERM";
  case SIGABRT: return "SIGABRT";
#ifdef SIGHUP
  case SIGHUP: return "SIGHUP";
#endif
#ifdef SIGQUIT
  case SIGQUIT: return "SIGQUIT";
#endif
#ifdef SIGUSR1
  case SIGUSR1: return "SIGUSR1";
#endif
#ifdef SIGUSR2
  case SIGUSR2: return "SIGUSR2";
#endif
  default: return {};
  }
}

void append_duration(std::string& out, cancel_reason::clock::duration d)
{
  using namespace std::chrono;
  const auto ns = duration_cast<nanoseconds>(d).count();
  if (ns % 1'000'000'000 == 0)
    out += std::to_string(ns / 1'000'000'000) + "s";
  else if (ns % 1'000'000 == 0)
    out += std::to_string(ns / 1'000'000) + "ms";
  else if (ns % 1'000 == 0)
    out += std::to_string(ns / 1'000) + "us";
  else if (ns < 1'000 && ns > -1'000)
    out += std::to_string(ns) + "ns";
  else
  {
    // Measured, not given (a deadline relative to when the reason was made):
    // the largest unit, to three decimals, trailing zeros dropped.
    const long long mag = ns < 0 ? -ns : ns;
    const auto [unit, name] = mag >= 1'000'000'000 ? std::pair{1'000'000'000LL, "s"}
        : mag >= 1'000'000                         ? std::pair{1'000'000LL, "ms"}
                                                   : std::pair{1'000LL, "us"};
    char buf[48];
    std::snprintf(buf, sizeof buf, "%.3f", static_cast<double>(ns) / static_cast<double>(unit));
    std::string text(buf);
    while (text.back() == '0')
      text.pop_back();
    if (text.back() == '.')
      text.pop_back();
    out += text;
    out += name;
  }
}

// "void ns::fetch(int)" -> "ns::fetch(int)": the return type is noise in a
// log line. Inside a coroutine g++ names the body "R f(f(Args)::_Z….Frame*)";
// the real signature is the part inside.
std::string_view short_function(std::string_view f) noexcept
{
  if (const auto with = f.find(" [with "); with != std::string_view::npos)
    f = f.substr(0, with);
  if (const auto frame = f.find("::_Z"); frame != std::string_view::npos
      && f.find(".Frame*)") != std::string_view::npos)
  {
    const auto open = f.find('(');
    if (open != std::string_view::npos && open < frame)
      return f.substr(open + 1, frame - open - 1);
  }
  const auto paren = f.find('(');
  if (paren == std::string_view::npos)
    return f;
  const auto space = f.rfind(' ', paren);
  return space == std::string_view::npos ? f : f.substr(space + 1);
}

void append_hop(std::string& out, const cancel_reason& r)
{
  out += to_string(r.kind());
  if (!r.message().empty())
  {
    out += " \"";
    out += r.message();
    out += '"';
  }
  if (r.signal_number() != 0)
  {
    out += r.kind() == reason_kind::signal ? " " : " signal ";
    out += std::to_string(r.signal_number());
    if (auto name = signal_name(r.signal_number()); !name.empty())
    {
      out += " (";
      out += name;
      out += ')';
    }
  }
  if (r.deadline() != cancel_reason::clock::time_point())
  {
    // The duration as given reads best; else the deadline relative to when().
    const auto rel = r.deadline() - r.when();
    out += " (deadline ";
    if (r.rep()->has_after_)
      append_duration(out, r.rep()->after_);
    else if (rel >= cancel_reason::clock::duration::zero())
    {
      out += "in ";
      append_duration(out, rel);
    }
    else
    {
      append_duration(out, -rel);
      out += " ago";
    }
    out += ')';
  }
  if (r.has_tag())
    out += " [tagged]";
  const auto loc = r.where();
  if (loc.line() != 0)
  {
    out += " at ";
    out += detail::base_name(loc.file_name());
    out += ':';
    out += std::to_string(loc.line());
    if (auto fn = short_function(loc.function_name()); !fn.empty())
    {
      out += " in ";
      out += fn;
    }
  }
}

} // namespace

std::string to_string(const cancel_reason& r, reason_format f)
{
  if (!r)
    return "none";
  std::string out;
  for (const cancel_reason* hop = &r; *hop; hop = &hop->cause())
  {
    if (hop != &r)
      out += f == reason_format::line ? " <- " : "\n  <- ";
    append_hop(out, *hop);
  }
  return out;
}

std::ostream& operator<<(std::ostream& os, const cancel_reason& r)
{
  return os << to_string(r);
}

std::ostream& operator<<(std::ostream& os, reason_kind k)
{
  return os << to_string(k);
}

namespace reason {

cancel_reason user(std::string_view message, std::source_location where)
{
  return detail::make_reason({reason_kind::user, message, where});
}

cancel_reason timeout(cancel_reason::clock::duration after, std::source_location where)
{
  return detail::make_reason(
      {reason_kind::timeout, {}, where, {}, 0, {}, true, after});
}

cancel_reason timeout(cancel_reason::clock::time_point deadline, std::source_location where)
{
  return detail::make_reason({reason_kind::timeout, {}, where, deadline});
}

cancel_reason shutdown(std::string_view message, std::source_location where)
{
  return detail::make_reason({reason_kind::shutdown, message, where});
}

cancel_reason signal(int signo, std::source_location where)
{
  return detail::make_reason({reason_kind::signal, {}, where, {}, signo});
}

cancel_reason parent(cancel_reason cause)
{
  return detail::make_reason({reason_kind::parent, {}, {}, {}, 0, std::move(cause)});
}

cancel_reason escalated(cancel_reason cause, std::source_location where)
{
  return detail::make_reason({reason_kind::escalated, {}, where, {}, 0, std::move(cause)});
}

cancel_reason shield_deadline(cancel_reason::clock::time_point deadline, std::source_location where)
{
  return detail::make_reason({reason_kind::shield_deadline, {}, where, deadline});
}

const cancel_reason& unspecified() noexcept
{
  static const cancel_reason r = detail::make_reason({reason_kind::unspecified});
  return r;
}

} // namespace reason
} // namespace arc
