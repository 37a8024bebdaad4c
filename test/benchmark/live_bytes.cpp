// arc benchmarks: live heap bytes, from glibc's own accounting. Asio's
// recycling allocator and coroutine frames bypass operator new (they call
// aligned_alloc), so counting operator new would miss them; malloc's arena
// statistics do not.
#include "live_bytes.hpp"

#include <malloc.h>

std::ptrdiff_t arc_bench::live_bytes() noexcept
{
  const struct mallinfo2 mi = mallinfo2();
  return static_cast<std::ptrdiff_t>(mi.uordblks + mi.hblkhd);
}
