// arc: Asio Reasoned Cancellation
#include <arc/co_spawn.hpp>
#include <arc/error.hpp>

#include <boost/system/system_error.hpp>

namespace arc {
namespace detail {

source_state*& current_task() noexcept
{
  thread_local source_state* task = nullptr;
  return task;
}

} // namespace detail

namespace this_task {

bool in_task() noexcept { return detail::current_task() != nullptr; }

cancel_reason reason() noexcept
{
  auto* t = detail::current_task();
  return t ? t->reason() : cancel_reason();
}

bool cancelled() noexcept
{
  auto* t = detail::current_task();
  return t && t->cancelled();
}

std::size_t requests() noexcept
{
  auto* t = detail::current_task();
  return t ? t->requests() : 0;
}

cancel_source source()
{
  auto* t = detail::current_task();
  if (!t)
    throw boost::system::system_error(make_error_code(error::not_in_task),
        "arc::this_task::source");
  t->add_ref();
  return cancel_source(t);
}

} // namespace this_task
} // namespace arc
