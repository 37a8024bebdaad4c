// arc: Asio Reasoned Cancellation
#ifndef ARC_DETAIL_HANDLER_STORAGE_HPP
#define ARC_DETAIL_HANDLER_STORAGE_HPP

#include <arc/detail/config.hpp>

#include <boost/asio/cancellation_type.hpp>

#include <cstddef>
#include <cstdint>
#include <new>
#include <utility>

namespace arc::detail {

class cancel_handler_base
{
public:
  virtual void call(asio::cancellation_type_t type) = 0;
  virtual void destroy() noexcept = 0;

protected:
  ~cancel_handler_base() = default;
};

template <typename Handler>
class cancel_handler_impl final : public cancel_handler_base
{
public:
  template <typename... Args>
  explicit cancel_handler_impl(Args&&... args) : handler_(std::forward<Args>(args)...)
  {
  }

  void call(asio::cancellation_type_t type) override { handler_(type); }
  void destroy() noexcept override { this->~cancel_handler_impl(); }

  Handler handler_;
};

// Holds at most one cancellation handler. Memory is reused across emplace
// calls: Asio's own handlers (a socket's or a timer's, 32 bytes with the
// vtable pointer) and Beast's filtering wrapper (40) fit the inline buffer; a larger one gets a heap
// block that is kept for the next emplace, so a slot reused by a chain of
// operations allocates at most once.
//
// Re-entrancy: a handler may clear() or emplace() its own slot while it runs
// (an operation completed inline from its cancellation handler does exactly
// that). The running handler is then retired, not destroyed: its object and
// memory stay valid until call() returns, and a handler emplaced meanwhile
// goes to other memory.
class handler_storage
{
public:
  // 48, not 40: the storage is 16-aligned, so 40 would pad to the same size.
  static constexpr std::size_t inline_size = 48;

  handler_storage() noexcept = default;
  handler_storage(const handler_storage&) = delete;
  handler_storage& operator=(const handler_storage&) = delete;

  ~handler_storage()
  {
    clear();
    free_block(heap_);
  }

  template <typename Handler, typename... Args>
  Handler& emplace(Args&&... args)
  {
    // Emplacing from inside a call is rare and kept off the common path.
    if (frame_) [[unlikely]]
      return construct<Handler>(prepare_in_call(), std::forward<Args>(args)...);
    if (cancel_handler_base* h = std::exchange(handler_, nullptr))
      h->destroy();
    return construct<Handler>(false, std::forward<Args>(args)...);
  }

  void clear() noexcept
  {
    cancel_handler_base* h = std::exchange(handler_, nullptr);
    if (!h)
      return;
    if (!frame_ || h != frame_->running) [[likely]]
    {
      h->destroy();
      return;
    }
    // Cleared from inside its own call: destroyed when the call returns.
    frame_->retired = h;
    frame_->retired_in_heap = static_cast<void*>(h) == heap_.ptr;
    if (frame_->retired_in_heap)
    {
      // Its memory leaves the storage with it, freed when the call returns.
      const block b = std::exchange(heap_, block{});
      frame_->retired_ptr = b.ptr;
      frame_->retired_size = b.size;
      frame_->retired_align = b.align;
    }
  }

  bool has_handler() const noexcept { return handler_ != nullptr; }

  // Calls the installed handler, if any. Not re-entrant for one storage: the
  // owner (cancellation_signal, op_node) never calls while a call runs.
  void call(asio::cancellation_type_t type)
  {
    cancel_handler_base* h = handler_;
    if (!h)
      return;
    call_frame frame(h);
    frame_ = &frame;
    try
    {
      h->call(type);
    }
    catch (...)
    {
      end_call(frame);
      throw;
    }
    end_call(frame);
  }

private:
  // A cancellation handler is small: 32-bit size and alignment keep the
  // block at two words.
  struct block
  {
    void* ptr = nullptr;
    std::uint32_t size = 0;
    std::uint32_t align = alignof(std::max_align_t);
  };

  // What a running call needs to know, on its own stack: the storage itself
  // only holds a pointer to it while a call runs.
  // retired_in_heap and retired_block are written when a handler retires,
  // and read only then: the common path initialises two pointers.
  struct call_frame
  {
    explicit call_frame(cancel_handler_base* h) noexcept : running(h), retired(nullptr) {}

    cancel_handler_base* running;
    cancel_handler_base* retired;
    bool retired_in_heap;
    void* retired_ptr;
    std::uint32_t retired_size;
    std::uint32_t retired_align;
  };

  static void free_block(block& b) noexcept
  {
    if (b.ptr)
      ::operator delete(b.ptr, b.size, std::align_val_t{b.align});
    b = block{};
  }

  void end_call(call_frame& frame) noexcept
  {
    frame_ = nullptr;
    if (frame.retired) [[unlikely]]
      destroy_retired(frame);
  }

  static void destroy_retired(call_frame& frame) noexcept
  {
    frame.retired->destroy();
    if (frame.retired_in_heap)
    {
      block b{frame.retired_ptr, frame.retired_size, frame.retired_align};
      free_block(b);
    }
  }

  // A call is running: the old handler may be the running one (retired, not
  // destroyed). Returns whether a retired handler still occupies the inline
  // buffer.
  [[gnu::noinline]] bool prepare_in_call() noexcept
  {
    clear();
    return static_cast<void*>(frame_->retired) == buffer_;
  }

  template <typename Handler, typename... Args>
  Handler& construct(bool buffer_busy, Args&&... args)
  {
    using impl = cancel_handler_impl<Handler>;
    void* mem = allocate(sizeof(impl), alignof(impl), buffer_busy);
    // If the constructor throws, no handler is installed and the memory stays cached.
    auto* p = ::new (mem) impl(std::forward<Args>(args)...);
    handler_ = p;
    return p->handler_;
  }

  void* allocate(std::size_t size, std::size_t align, bool buffer_busy)
  {
    if (!buffer_busy && size <= inline_size && align <= alignof(std::max_align_t))
      return buffer_;
    const std::size_t a = align > alignof(std::max_align_t) ? align : alignof(std::max_align_t);
    if (!heap_.ptr || size > heap_.size || a > heap_.align)
    {
      free_block(heap_);
      heap_.ptr = ::operator new(size, std::align_val_t{a});
      heap_.size = static_cast<std::uint32_t>(size);
      heap_.align = static_cast<std::uint32_t>(a);
    }
    return heap_.ptr;
  }

  alignas(std::max_align_t) unsigned char buffer_[inline_size];
  cancel_handler_base* handler_ = nullptr;
  call_frame* frame_ = nullptr; // while a call runs
  block heap_;
};

} // namespace arc::detail

#endif
