// arc: Asio Reasoned Cancellation
#ifndef ARC_IMPL_SHIELD_EXECUTOR_HPP
#define ARC_IMPL_SHIELD_EXECUTOR_HPP

#include <arc/cancel_reason.hpp>

#include <boost/asio/execution/context.hpp>
#include <boost/asio/execution/outstanding_work.hpp>

#include <string>
#include <type_traits>
#include <utility>

namespace arc::detail {

// A function submitted through a shield executor: pending work of its scope
// until it has run, or until it is destroyed unrun.
template <typename Function>
class shielded_function
{
public:
  template <typename F>
  shielded_function(F&& f, shield_scope* scope) : f_(std::forward<F>(f)), scope_(scope)
  {
  }
  shielded_function(shielded_function&& o) noexcept(std::is_nothrow_move_constructible_v<Function>)
    : f_(std::move(o.f_)), scope_(std::exchange(o.scope_, nullptr))
  {
  }
  shielded_function& operator=(shielded_function&&) = delete;
  ~shielded_function()
  {
    if (scope_)
      scope_->end();
  }

  void operator()()
  {
    struct end_after
    {
      shield_scope* s;
      ~end_after() { s->end(); }
    } end{std::exchange(scope_, nullptr)};
    std::move(f_)();
  }

private:
  Function f_;
  shield_scope* scope_;
};

} // namespace arc::detail

namespace arc {

template <typename Executor>
bool shield_executor<Executor>::tracks(const Executor& ex) noexcept
{
  namespace execution = boost::asio::execution;
  if constexpr (boost::asio::can_query<const Executor&, execution::outstanding_work_t>::value)
    return boost::asio::query(ex, execution::outstanding_work) == execution::outstanding_work.tracked;
  else
    return false;
}

template <typename Executor>
shield_executor<Executor>::shield_executor(Executor ex, detail::shield_scope_ref scope) noexcept
  : inner_(std::move(ex)), scope_(std::move(scope)), tracked_(tracks(inner_))
{
  if (tracked_)
    scope_->begin();
}

template <typename Executor>
shield_executor<Executor>::shield_executor(const shield_executor& other) noexcept
  : inner_(other.inner_), scope_(other.scope_), tracked_(other.tracked_)
{
  if (tracked_)
    scope_->begin();
}

template <typename Executor>
shield_executor<Executor>::shield_executor(shield_executor&& other) noexcept
  : inner_(std::move(other.inner_)), scope_(std::move(other.scope_)),
    tracked_(std::exchange(other.tracked_, false))
{
}

template <typename Executor>
shield_executor<Executor>& shield_executor<Executor>::operator=(const shield_executor& other) noexcept
{
  shield_executor copy(other);
  return *this = std::move(copy);
}

template <typename Executor>
shield_executor<Executor>& shield_executor<Executor>::operator=(shield_executor&& other) noexcept
{
  if (this != &other)
  {
    if (tracked_)
      scope_->end();
    inner_ = std::move(other.inner_);
    scope_ = std::move(other.scope_);
    tracked_ = std::exchange(other.tracked_, false);
  }
  return *this;
}

template <typename Executor>
shield_executor<Executor>::~shield_executor()
{
  if (tracked_)
    scope_->end();
}

template <typename Executor>
template <typename Function>
void shield_executor<Executor>::execute(Function&& f) const
{
  detail::shield_scope* s = scope_.get();
  s->check_alive();
  s->begin();
  // From here the wrapper owns the count: if execute throws, destroying it
  // ends the count.
  inner_.execute(detail::shielded_function<std::decay_t<Function>>(std::forward<Function>(f), s));
}

template <typename Executor>
template <typename Property>
  requires boost::asio::can_require<const Executor&, const Property&>::value
auto shield_executor<Executor>::require(const Property& p) const&
{
  using inner_type = std::decay_t<decltype(boost::asio::require(inner_, p))>;
  return shield_executor<inner_type>(boost::asio::require(inner_, p), scope_);
}

template <typename Executor>
template <typename Property>
  requires boost::asio::can_require<const Executor&, const Property&>::value
auto shield_executor<Executor>::require(const Property& p) &&
{
  using inner_type = std::decay_t<decltype(boost::asio::require(inner_, p))>;
  // Takes this one's reference instead of copying it (Asio chains
  // require/prefer on temporaries); this one's count ends after the new one's
  // has begun, so the scope never looks idle in between.
  shield_executor<inner_type> out(boost::asio::require(std::move(inner_), p), std::move(scope_));
  if (std::exchange(tracked_, false))
    out.scope_->end();
  return out;
}

template <typename Executor>
template <typename Property>
  requires boost::asio::can_prefer<const Executor&, const Property&>::value
auto shield_executor<Executor>::prefer(const Property& p) const&
{
  using inner_type = std::decay_t<decltype(boost::asio::prefer(inner_, p))>;
  return shield_executor<inner_type>(boost::asio::prefer(inner_, p), scope_);
}

template <typename Executor>
template <typename Property>
  requires boost::asio::can_prefer<const Executor&, const Property&>::value
auto shield_executor<Executor>::prefer(const Property& p) &&
{
  using inner_type = std::decay_t<decltype(boost::asio::prefer(inner_, p))>;
  // Takes this one's reference instead of copying it (Asio chains
  // require/prefer on temporaries); this one's count ends after the new one's
  // has begun, so the scope never looks idle in between.
  shield_executor<inner_type> out(boost::asio::prefer(std::move(inner_), p), std::move(scope_));
  if (std::exchange(tracked_, false))
    out.scope_->end();
  return out;
}

template <typename Executor>
shield_info shield_executor<Executor>::info() const
{
  return scope_->info();
}

template <typename Executor>
template <typename Task>
void shield_executor<Executor>::arc_shielded_spawn(Task& task) const
{
  const auto at = scope_->deadline_from_now();
  if (at != std::chrono::steady_clock::time_point::max())
    task.arm_deadline(at, reason::shield_deadline(at, scope_->where()),
        std::chrono::steady_clock::duration{}, scope_->where());
}

template <typename Executor>
shield_executor<Executor> make_shield_executor(const Executor& ex,
    shield_executor_options opts, std::source_location where)
{
  namespace asio = boost::asio;
  return shield_executor<Executor>(ex,
      detail::shield_scope::make(std::string(opts.name), where, opts.deadline, opts.deadline_at,
          asio::any_io_executor(asio::prefer(ex, asio::execution::outstanding_work.untracked))));
}

} // namespace arc

#endif
