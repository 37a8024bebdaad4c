// arc: Asio Reasoned Cancellation
#ifndef ARC_SHIELD_EXECUTOR_HPP
#define ARC_SHIELD_EXECUTOR_HPP

#include <arc/detail/shield_scope.hpp>

#include <boost/asio/execution/executor.hpp>
#include <boost/asio/is_executor.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/query.hpp>
#include <boost/asio/require.hpp>

#include <chrono>
#include <optional>
#include <source_location>
#include <string_view>

namespace arc {

/// Options of a shield executor. Trivially copyable, as shield_options is.
struct shield_executor_options
{
  /// A task arc::co_spawn'd on the executor is force-cancelled (terminal,
  /// reason kind `shield_deadline`) if it runs this long. None: no deadline.
  std::optional<std::chrono::steady_clock::duration> deadline{};

  /// The same as a time point, for every task spawned on the executor; the
  /// earlier of the two applies.
  std::optional<std::chrono::steady_clock::time_point> deadline_at{};

  /// The name in shield_info and shutdown reports; copied.
  std::string_view name{};
};

/// An executor whose work is shielded: a context's shutdown waits for it, and
/// only its own deadline forces it.
/**
 * Wraps @p Executor. What it tracks as its own, its *pending work*:
 * - every function submitted through it (`post`, `dispatch`, `defer`,
 *   `execute`), from submission until it has run or been destroyed;
 * - every copy of it that tracks outstanding work
 *   (`execution::outstanding_work.tracked`): Asio keeps one for each pending
 *   asynchronous operation whose handler's associated executor it is, and for
 *   the life of a coroutine co_spawn'd on it.
 *
 * While work is pending, the executor is listed in arc::shields(ctx), and
 * `arc::async_shutdown(ctx)` and `shutdown_on_signals` wait for it to end
 * (up to their `force_after`), then list it in their report.
 *
 * `arc::co_spawn(shield_ex, work, token)` runs @p work as a task that nothing
 * outside cancels: the token's cancellation slot and an `arc::bind_cancel`
 * source are not connected to it. Only the executor's deadline, if it has
 * one, forces it (reason kind `shield_deadline`). A coroutine that awaits such
 * a task keeps waiting for it when cancelled, so a group's shutdown waits for
 * it too, as it waits for a shield.
 *
 * It satisfies Asio's executor requirements: `any_io_executor` can hold it,
 * and properties are forwarded to the wrapped executor. Held that way, its
 * work is still tracked and waited for; but arc::co_spawn cannot see through
 * the type erasure, and links the spawn's slot as usual.
 *
 * @par Misuse
 * Submitting work through a shield executor whose execution context has been
 * destroyed throws `boost::system::system_error` with
 * arc::error::context_destroyed, and the function is destroyed unrun (a plain
 * Asio executor would use freed memory). As with Asio's own executors, a copy
 * that tracks outstanding work must not outlive its context.
 *
 * @par Thread Safety
 * Distinct objects: safe. Shared objects: safe for const member functions,
 * as with any executor; copies may be used from any thread.
 */
template <typename Executor>
class shield_executor
{
public:
  /// The wrapped executor's type.
  using inner_executor_type = Executor;

  shield_executor(const shield_executor& other) noexcept;
  shield_executor(shield_executor&& other) noexcept;
  shield_executor& operator=(const shield_executor& other) noexcept;
  shield_executor& operator=(shield_executor&& other) noexcept;
  ~shield_executor();

  /// The wrapped executor.
  const inner_executor_type& get_inner_executor() const noexcept { return inner_; }

  /// Submit @p f to the wrapped executor, as pending shielded work.
  /**
   * @throws boost::system::system_error arc::error::context_destroyed if the
   * context is gone; whatever the wrapped executor throws.
   */
  template <typename Function>
  void execute(Function&& f) const;

  /// Forwarded to the wrapped executor.
  template <typename Property>
    requires boost::asio::can_query<const Executor&, const Property&>::value
  decltype(auto) query(const Property& p) const
      noexcept(boost::asio::is_nothrow_query<const Executor&, const Property&>::value)
  {
    return boost::asio::query(inner_, p);
  }

  /// A shield executor of the same scope, around `require(inner, p)`.
  template <typename Property>
    requires boost::asio::can_require<const Executor&, const Property&>::value
  auto require(const Property& p) const&;
  template <typename Property>
    requires boost::asio::can_require<const Executor&, const Property&>::value
  auto require(const Property& p) &&;

  /// A shield executor of the same scope, around `prefer(inner, p)`.
  template <typename Property>
    requires boost::asio::can_prefer<const Executor&, const Property&>::value
  auto prefer(const Property& p) const&;
  template <typename Property>
    requires boost::asio::can_prefer<const Executor&, const Property&>::value
  auto prefer(const Property& p) &&;

  /// Equal if they wrap equal executors and were made by the same
  /// make_shield_executor call (or copied from one).
  friend bool operator==(const shield_executor& a, const shield_executor& b) noexcept
  {
    return a.inner_ == b.inner_ && a.scope_.get() == b.scope_.get();
  }

  /// What the registry reports of this executor's shield.
  shield_info info() const;

  /// For arc::co_spawn: the task spawned on this executor is the executor's;
  /// arm its deadline, if any.
  template <typename Task>
  void arc_shielded_spawn(Task& task) const;

private:
  template <typename E>
  friend class shield_executor;
  template <typename E>
  friend shield_executor<E> make_shield_executor(
      const E&, shield_executor_options, std::source_location);

  shield_executor(Executor ex, detail::shield_scope_ref scope) noexcept;
  static bool tracks(const Executor& ex) noexcept;

  Executor inner_;
  detail::shield_scope_ref scope_;
  bool tracked_; // this copy counts as pending work
};

/// Make a shield executor around @p ex.
/**
 * Every copy made from the result shares one shield: one entry in
 * arc::shields(ctx) and in a shutdown report, whose `pending` counts their
 * outstanding work together.
 *
 * @param ex     the executor to wrap: an `io_context`'s, a strand, a
 *               `thread_pool`'s, `any_io_executor`...
 * @param opts   deadline for the tasks spawned on it, name.
 * @param where  where it was made, for reports.
 *
 * @par Example
 * @code
 * auto audit = arc::make_shield_executor(ctx.get_executor(), {.name = "audit"});
 * asio::post(audit, [] { flush_audit_log(); });  // shutdown waits for it
 * arc::co_spawn(audit, commit(order), asio::detached);  // nothing cancels it
 * @endcode
 */
template <typename Executor>
shield_executor<Executor> make_shield_executor(const Executor& ex,
    shield_executor_options opts = {},
    std::source_location where = std::source_location::current());

} // namespace arc

#include <arc/impl/shield_executor.hpp>

#endif
