// arc: Asio Reasoned Cancellation
#ifndef ARC_DETAIL_SHIELD_RECORD_HPP
#define ARC_DETAIL_SHIELD_RECORD_HPP

#include <arc/cancel_source.hpp>
#include <arc/detail/intrusive.hpp>
#include <arc/detail/task_state.hpp>
#include <arc/task_info.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <atomic>
#include <chrono>
#include <exception>
#include <functional>
#include <source_location>
#include <string>

namespace arc::detail {

class registry_core;

// One shield: its work (a task of its own, linked to nothing), what the
// registry reports of it, and the event its awaiter and a context's shutdown
// wait on. Shared by the awaiter, the work's completion handler and the
// registry; each holds a reference.
//
// Life: made and registered when the shield is entered; finish() once, from
// the work's completion handler on its executor (or from that handler's
// destructor, when the io_context destroys it uncalled: abandoned). finish()
// unregisters, lets go of the outstanding work it held, and fires done.
class shield_record
{
public:
  void add_ref() noexcept { refs_.add(); }
  void release() noexcept
  {
    if (refs_.release())
      destroy_self();
  }

  shield_info info() const;

  // The work's own task: its source has the deadline, if any.
  task_state* body() const noexcept { return body_.get(); }
  const task_ref& body_ref() const noexcept { return body_; }

  // Fired (reason user "shield done") once the work has completed.
  const cancel_source& done() const noexcept { return done_; }

  // The work completed (@p abandoned: its handler was destroyed uncalled).
  // @p error is what it threw. Runs the detached-completion callback or
  // reports a failure nobody will see, outside any lock.
  void finish(std::exception_ptr error, bool abandoned) noexcept;

  // The awaiter stops waiting (shield_policy::detach, cancelled): the work
  // is now the registry's. If it has finished already, its failure is
  // reported here.
  void leave() noexcept;

  // True if the deadline forced the work.
  bool forced() const noexcept;

protected:
  shield_record(std::string name, std::source_location where,
      std::chrono::steady_clock::time_point deadline,
      std::function<void(std::exception_ptr)> on_done, const asio::any_io_executor& ex);
  virtual ~shield_record();
  virtual void destroy_self() noexcept = 0;

  // What the work threw, kept for the awaiter.
  std::exception_ptr error_;

private:
  enum : int
  {
    awaited = 0,
    finished = 1,
    left = 2,
    reported = 3
  };
  void report_unobserved(std::exception_ptr e) noexcept;

  ref_count refs_;
  std::uint64_t id_ = 0;
  std::string name_;
  std::source_location where_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point deadline_;
  std::function<void(std::exception_ptr)> on_done_; // called once the work completes
  task_ref body_;
  cancel_source done_;
  asio::any_io_executor work_; // outstanding_work.tracked until finish()
  ref_ptr<registry_core> core_;
  std::atomic<int> phase_{awaited};
  std::atomic<bool> finished_{false};
  std::atomic<bool> detached_{false};
};

using shield_ref = ref_ptr<shield_record>;

} // namespace arc::detail

#endif
