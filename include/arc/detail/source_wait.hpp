// arc: Asio Reasoned Cancellation
#ifndef ARC_DETAIL_SOURCE_WAIT_HPP
#define ARC_DETAIL_SOURCE_WAIT_HPP

#include <arc/cancel_reason.hpp>
#include <arc/detail/config.hpp>
#include <arc/detail/initiation.hpp>
#include <arc/detail/intrusive.hpp>
#include <arc/detail/source_state.hpp>
#include <arc/detail/wrapped_handler.hpp>
#include <arc/error.hpp>

#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/associator.hpp>
#include <boost/asio/execution/context.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/query.hpp>
#include <boost/system/system_error.hpp>

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>

namespace arc::detail {

// Something of arc's that lives on an execution context without being an
// operation the context owns: a pending source wait, a source's deadline
// timer. When the context is destroyed it must not outlive it.
class context_resident
{
public:
  virtual bool try_add_ref() noexcept = 0;
  virtual void release() noexcept = 0;
  // The context is being destroyed: drop handlers and I/O objects, and
  // never touch the context again.
  virtual void context_shutdown() noexcept = 0;

  // Guarded by the registry's mutex.
  context_resident* registry_prev_ = nullptr;
  context_resident* registry_next_ = nullptr;
  bool registered_ = false;

protected:
  ~context_resident() = default;
};

// The residents of one execution context. Destroying the context shuts
// them down (a pending wait's handler is destroyed without being called, as
// Asio does with the operations it owns).
class context_registry final : public asio::execution_context::service
{
public:
  static inline asio::execution_context::id id;

  explicit context_registry(asio::execution_context& ctx) : service(ctx) {}

  void add(context_resident* r) noexcept;
  // False if @p r was not registered (any more).
  bool remove(context_resident* r) noexcept;

private:
  void shutdown() override;

  std::mutex mutex_;
  context_resident* head_ = nullptr;
};

// A pending source::async_wait: a node linked into the source, and (if the
// handler has a connected slot) a cancellation handler there. Whichever of
// the source's notify, the slot's emit or the context's shutdown claims it
// first ends it; the others find it claimed and do nothing.
class source_wait_base : public cancel_node, public context_resident
{
public:
  bool try_add_ref() noexcept override { return refs_.try_add(); }
  void add_ref() noexcept { refs_.add(); }
  void release() noexcept override
  {
    if (refs_.release())
      destroy();
  }

  void notify(const cancel_reason& r, asio::cancellation_type_t,
      asio::cancellation_type_t) override
  {
    if (claim())
      finish(r);
  }

  // From the slot, on the handler's executor.
  void slot_cancelled()
  {
    if (claim())
      finish(cancel_reason());
  }

  // From the registry, when the context is destroyed: the handler is
  // destroyed, not called.
  void context_shutdown() noexcept override
  {
    if (!claim())
      return;
    if (source_)
      source_->unlink(this);
    drop_handler();
    release(); // the pending reference
  }

protected:
  source_wait_base(source_state* src, context_registry* service) noexcept
    : source_(src), service_(service)
  {
    if (source_)
      source_->add_ref();
  }

  ~source_wait_base()
  {
    if (source_)
    {
      source_->unlink(this);
      source_->release();
    }
  }

  bool claim() noexcept { return !claimed_.exchange(true, std::memory_order_acq_rel); }

  // Claimed: leave the source and the service, then post the handler with
  // @p r (empty when the wait itself was cancelled).
  void finish(const cancel_reason& r)
  {
    if (source_)
      source_->unlink(this);
    service_->remove(this);
    post_handler(r);
    release(); // the pending reference
  }

  virtual void post_handler(const cancel_reason& r) = 0;
  virtual void drop_handler() noexcept = 0;
  virtual void destroy() noexcept = 0;

  source_state* source_;
  context_registry* service_;

private:
  ref_count refs_; // the pending reference, and the slot handler's
  std::atomic<bool> claimed_{false};
};

// Installed in the handler's own slot: cancels the wait. Holds a reference,
// so the wait outlives it.
class source_wait_canceller
{
public:
  explicit source_wait_canceller(source_wait_base* w) noexcept : wait_(w) { wait_->add_ref(); }
  source_wait_canceller(const source_wait_canceller&) = delete;
  source_wait_canceller& operator=(const source_wait_canceller&) = delete;
  ~source_wait_canceller() { wait_->release(); }

  void operator()(asio::cancellation_type_t type)
  {
    if ((type & (asio::cancellation_type::terminal | asio::cancellation_type::partial
                     | asio::cancellation_type::total))
        != asio::cancellation_type::none)
      wait_->slot_cancelled();
  }

private:
  source_wait_base* wait_;
};

// Runs on the handler's executor: clears the slot the wait installed its
// canceller in (so the wait's memory goes), then calls the handler.
template <typename Handler>
class source_wait_completion
{
public:
  using arc_wrapped_handler = Handler;

  source_wait_completion(Handler&& h, cancel_reason r, bool slot_used)
    : handler_(std::move(h)), reason_(std::move(r)), slot_used_(slot_used)
  {
  }

  void operator()()
  {
    if (slot_used_)
      asio::get_associated_cancellation_slot(handler_).clear();
    std::move(handler_)(std::move(reason_));
  }

  Handler handler_;

private:
  cancel_reason reason_;
  bool slot_used_;
};

template <typename Handler, typename IoExecutor>
class source_wait final : public source_wait_base
{
public:
  using allocator_type = typename std::allocator_traits<
      asio::associated_allocator_t<Handler>>::template rebind_alloc<source_wait>;

  static source_wait* create(Handler&& h, const IoExecutor& io_ex, source_state* src,
      context_registry* service)
  {
    allocator_type alloc(asio::get_associated_allocator(h));
    source_wait* p = std::allocator_traits<allocator_type>::allocate(alloc, 1);
    try
    {
      return ::new (p) source_wait(std::move(h), io_ex, src, service, alloc);
    }
    catch (...)
    {
      std::allocator_traits<allocator_type>::deallocate(alloc, p, 1);
      throw;
    }
  }

  // Start waiting: on the service, in the slot, then on the source. The
  // slot comes before the source: once linked, a cancel on another thread
  // may complete the wait at once, and the completion must know to clear it.
  void start()
  {
    service_->add(this);
    auto slot = asio::get_associated_cancellation_slot(handler_);
    if (slot.is_connected())
    {
      slot.template emplace<source_wait_canceller>(this);
      slot_used_ = true;
    }
    link_result now = source_ ? source_->link(this) : link_result{};
    if (!source_ || now.reason)
    {
      // Cancelled already (or nothing to wait for): complete, posted.
      if (claim())
        finish(now.reason);
    }
  }

private:
  using link_result = source_state::link_result;
  using work_executor = std::decay_t<decltype(asio::prefer(
      std::declval<const IoExecutor&>(), asio::execution::outstanding_work.tracked))>;

  source_wait(Handler&& h, const IoExecutor& io_ex, source_state* src,
      context_registry* service, const allocator_type& alloc)
    : source_wait_base(src, service), handler_(std::move(h)),
      work_(asio::prefer(io_ex, asio::execution::outstanding_work.tracked)), alloc_(alloc)
  {
  }

  void post_handler(const cancel_reason& r) override
  {
    work_executor ex = std::move(*work_);
    work_.reset();
    asio::post(ex, source_wait_completion<Handler>(std::move(handler_), r, slot_used_));
  }

  void drop_handler() noexcept override
  {
    // The handler goes now (moved out and destroyed here); its memory with
    // the rest of the wait.
    Handler h(std::move(handler_));
    static_cast<void>(h);
    work_.reset();
  }

  void destroy() noexcept override
  {
    // The allocator kept at creation: the handler has been moved out by now,
    // and a moved-from handler need not answer (experimental::promise's
    // does not).
    allocator_type alloc(alloc_);
    this->~source_wait();
    std::allocator_traits<allocator_type>::deallocate(alloc, this, 1);
  }

  Handler handler_;
  std::optional<work_executor> work_;
  [[no_unique_address]] allocator_type alloc_;
  bool slot_used_ = false;
};

// The initiation of cancel_source::async_wait.
class initiate_source_wait
{
public:
  using executor_type = asio::any_io_executor;

  // Holds the state: a deferred wait may start once the handle is gone.
  explicit initiate_source_wait(source_state* src) noexcept : source_(src) {}

  // The source's executor (empty if it has none): where the wait completes
  // for a handler without one, and what use_promise needs.
  executor_type get_executor() const
  {
    source_state* src = source_.get();
    return src && src->has_executor() ? src->executor() : executor_type();
  }

  template <typename Handler>
  void operator()(Handler&& h) const
  {
    using handler_type = std::decay_t<Handler>;
    source_state* src = source_.get();
    // The handler runs on its own executor, else on the source's.
    if constexpr (!has_associated_executor<handler_type>)
      if (!src || !src->has_executor())
        throw boost::system::system_error(make_error_code(error::no_executor),
            "arc::cancel_source::async_wait");
    auto io_ex = asio::get_associated_executor(h, src ? src->executor() : asio::any_io_executor());
    auto& service = asio::use_service<context_registry>(
        asio::query(io_ex, asio::execution::context));
    handler_type handler(std::forward<Handler>(h));
    auto* w = source_wait<handler_type, decltype(io_ex)>::create(
        std::move(handler), io_ex, src, &service);
    w->start();
  }

private:
  source_ref source_;
};

} // namespace arc::detail

#endif
