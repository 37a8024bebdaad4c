// arc: Asio Reasoned Cancellation
#ifndef ARC_DETAIL_REGISTRY_CORE_HPP
#define ARC_DETAIL_REGISTRY_CORE_HPP

#include <arc/detail/group_state.hpp>
#include <arc/detail/intrusive.hpp>
#include <arc/detail/shield_record.hpp>
#include <arc/detail/shield_scope.hpp>
#include <arc/task_info.hpp>

#include <boost/asio/execution_context.hpp>

#include <atomic>

#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <vector>

namespace arc {
class registry;
} // namespace arc

namespace arc::detail {

// What the registry service and its groups share. The service may go before
// a group does (an io_context destroyed before a persistent_task_group), so
// neither points at the other: both hold the core.
class registry_core
{
public:
  void add_ref() noexcept { refs_.add(); }
  void release() noexcept
  {
    if (refs_.release())
      delete this;
  }

  void add(group_state* g);
  void remove(group_state* g) noexcept;
  std::vector<group_ref_ptr> groups() const;
  void set_on_abandoned(std::function<void(const task_info&)> h);
  // Report a task destroyed unfinished with its context. Never throws.
  void abandoned(const task_info& info) const noexcept;

  // Shields: registered while their work runs.
  std::uint64_t add_shield(shield_record* s);
  void remove_shield(shield_record* s) noexcept;
  std::vector<shield_ref> shields() const;
  void set_on_shield_error(std::function<void(std::exception_ptr, const shield_info&)> h);
  // A detached shield's work failed and nobody awaits it. Never throws.
  void shield_failed(std::exception_ptr e, const shield_info& info) const noexcept;
  // Shield executors: listed from their making to their destruction (weakly:
  // a scope removes itself as it is destroyed).
  std::uint64_t add_scope(shield_scope* s);
  void remove_scope(shield_scope* s) noexcept;
  // Every scope with work pending, each with a reference.
  std::vector<shield_scope_ref> busy_scopes() const;

  // The service is gone: forget the groups. From then on gone() is true.
  void detach() noexcept;
  bool gone() const noexcept { return gone_.load(std::memory_order_acquire); }

private:
  ref_count refs_;
  mutable std::mutex mutex_;
  std::vector<group_ref_ptr> groups_;
  std::function<void(const task_info&)> on_abandoned_;
  std::vector<shield_ref> shields_;
  std::vector<shield_scope*> scopes_;
  std::uint64_t next_shield_id_ = 0;
  std::atomic<bool> gone_{false};
  std::function<void(std::exception_ptr, const shield_info&)> on_shield_error_;
};

using registry_core_ptr = ref_ptr<registry_core>;

// The registry's core for @p ctx, made on first use.
registry_core_ptr registry_core_of(asio::execution_context& ctx);

struct registry_access
{
  static registry_core_ptr core(const registry& r) noexcept;
};

} // namespace arc::detail

#endif
