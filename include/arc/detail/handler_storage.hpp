// arc: Asio Reasoned Cancellation
#ifndef ARC_DETAIL_HANDLER_STORAGE_HPP
#define ARC_DETAIL_HANDLER_STORAGE_HPP

#include <arc/detail/config.hpp>

#include <boost/asio/cancellation_type.hpp>

#include <cstddef>
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
// calls: Asio's own handlers fit the inline buffer; a larger one gets a heap
// block that is kept for the next emplace, so a slot reused by a chain of
// operations allocates at most once.
class handler_storage
{
public:
  static constexpr std::size_t inline_size = 64;

  handler_storage() noexcept = default;
  handler_storage(const handler_storage&) = delete;
  handler_storage& operator=(const handler_storage&) = delete;

  ~handler_storage()
  {
    clear();
    if (heap_)
      ::operator delete(heap_, heap_size_, std::align_val_t{heap_align_});
  }

  template <typename Handler, typename... Args>
  Handler& emplace(Args&&... args)
  {
    using impl = cancel_handler_impl<Handler>;
    clear();
    void* mem = allocate(sizeof(impl), alignof(impl));
    // If the constructor throws, no handler is installed and the memory stays cached.
    auto* p = ::new (mem) impl(std::forward<Args>(args)...);
    handler_ = p;
    return p->handler_;
  }

  void clear() noexcept
  {
    if (auto* h = std::exchange(handler_, nullptr))
      h->destroy();
  }

  bool has_handler() const noexcept { return handler_ != nullptr; }

  void call(asio::cancellation_type_t type)
  {
    if (handler_)
      handler_->call(type);
  }

private:
  void* allocate(std::size_t size, std::size_t align)
  {
    if (size <= inline_size && align <= alignof(std::max_align_t))
      return buffer_;
    if (!heap_ || size > heap_size_ || align > heap_align_)
    {
      if (heap_)
        ::operator delete(heap_, heap_size_, std::align_val_t{heap_align_});
      heap_ = nullptr;
      const std::size_t a = align > alignof(std::max_align_t) ? align : alignof(std::max_align_t);
      heap_ = ::operator new(size, std::align_val_t{a});
      heap_size_ = size;
      heap_align_ = a;
    }
    return heap_;
  }

  alignas(std::max_align_t) unsigned char buffer_[inline_size];
  cancel_handler_base* handler_ = nullptr;
  void* heap_ = nullptr;
  std::size_t heap_size_ = 0;
  std::size_t heap_align_ = alignof(std::max_align_t);
};

} // namespace arc::detail

#endif
