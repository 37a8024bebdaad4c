// arc: Asio Reasoned Cancellation
#ifndef ARC_DETAIL_INTRUSIVE_HPP
#define ARC_DETAIL_INTRUSIVE_HPP

#include <atomic>
#include <cstddef>
#include <utility>

namespace arc::detail {

// The one reference count of arc's shared states. release() says whether the
// caller dropped the last reference; the owner then destroys the object, so
// that destruction can be iterative where a chain of objects is involved.
class ref_count
{
public:
  ref_count() noexcept : n_(1) {}
  explicit ref_count(std::size_t initial) noexcept : n_(initial) {}

  void add() noexcept { n_.fetch_add(1, std::memory_order_relaxed); }

  // Take a reference only if the object is not already being destroyed.
  bool try_add() noexcept
  {
    std::size_t n = n_.load(std::memory_order_relaxed);
    while (n != 0)
      if (n_.compare_exchange_weak(n, n + 1, std::memory_order_relaxed))
        return true;
    return false;
  }

  [[nodiscard]] bool release() noexcept
  {
    return n_.fetch_sub(1, std::memory_order_acq_rel) == 1;
  }

private:
  std::atomic<std::size_t> n_;
};

// A strong reference to anything with add_ref() and release().
template <typename T>
class ref_ptr
{
public:
  constexpr ref_ptr() noexcept = default;
  explicit ref_ptr(T* p) noexcept : p_(p)
  {
    if (p_)
      p_->add_ref();
  }
  // Take over a reference the caller already owns.
  static ref_ptr adopt(T* p) noexcept
  {
    ref_ptr r;
    r.p_ = p;
    return r;
  }
  ref_ptr(const ref_ptr& o) noexcept : ref_ptr(o.p_) {}
  ref_ptr(ref_ptr&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  ref_ptr& operator=(ref_ptr o) noexcept
  {
    std::swap(p_, o.p_);
    return *this;
  }
  ~ref_ptr()
  {
    if (p_)
      p_->release();
  }

  T* get() const noexcept { return p_; }
  T* operator->() const noexcept { return p_; }
  T& operator*() const noexcept { return *p_; }
  explicit operator bool() const noexcept { return p_ != nullptr; }
  T* detach() noexcept { return std::exchange(p_, nullptr); }

  friend bool operator==(const ref_ptr& a, const ref_ptr& b) noexcept { return a.p_ == b.p_; }

private:
  T* p_ = nullptr;
};

} // namespace arc::detail

#endif
