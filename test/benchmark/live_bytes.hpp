// arc benchmarks: how many bytes are live on the heap (live_bytes.cpp).
#ifndef ARC_BENCHMARK_LIVE_BYTES_HPP
#define ARC_BENCHMARK_LIVE_BYTES_HPP

#include <cstddef>

namespace arc_bench {

// The bytes malloc has handed out and not had back, in the calling thread's
// arena (glibc's mallinfo2): measure on one thread.
std::ptrdiff_t live_bytes() noexcept;

} // namespace arc_bench

#endif
