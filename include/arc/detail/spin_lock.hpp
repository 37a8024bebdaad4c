// arc: Asio Reasoned Cancellation
#ifndef ARC_DETAIL_SPIN_LOCK_HPP
#define ARC_DETAIL_SPIN_LOCK_HPP

#include <atomic>
#include <thread>

namespace arc::detail {

// Guards a node's handler: emplace, emit and clear may race only when an
// operation runs on a multi-threaded executor without a strand, and every
// critical section is a handful of instructions, so contention is rare and short.
class spin_lock
{
public:
  void lock() noexcept
  {
    while (locked_.exchange(true, std::memory_order_acquire))
      while (locked_.load(std::memory_order_relaxed))
        std::this_thread::yield();
  }

  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

private:
  std::atomic<bool> locked_{false};
};

} // namespace arc::detail

#endif
