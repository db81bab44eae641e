/*
 * CPU threading: a static, contiguous split of independent work items over std::threads.
 * Every item is computed by exactly one thread in a fixed order, so results do not depend
 * on the thread count.
 */
#ifndef DLU_PARALLEL_H
#define DLU_PARALLEL_H

#include <algorithm>
#include <cstdint>
#include <exception>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#endif

namespace dlu_kernels {

/* Cores this process may run on (the affinity mask, which containers and taskset narrow). */
inline int available_cores()
{
#if defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
#endif
    return static_cast<int>(std::thread::hardware_concurrency());
}

inline int resolve_threads(int requested, int64_t items)
{
    int threads = requested > 0 ? requested : available_cores();
    threads = std::max(threads, 1);
    return static_cast<int>(std::min<int64_t>(threads, std::max<int64_t>(items, 1)));
}

/* Calls body(begin, end) on disjoint ranges covering [0, items); rethrows a worker's exception. */
template <class Body>
void parallel_for(int64_t items, int requested_threads, Body&& body)
{
    const int threads = resolve_threads(requested_threads, items);
    if (threads == 1) {
        body(int64_t{0}, items);
        return;
    }
    std::vector<std::exception_ptr> errors(threads);
    auto run = [&](int i) {
        try {
            body(items * i / threads, items * (i + 1) / threads);
        } catch (...) {
            errors[i] = std::current_exception();
        }
    };
    std::vector<std::thread> workers;
    workers.reserve(threads - 1);
    try {
        for (int i = 1; i < threads; ++i) workers.emplace_back(run, i);
    } catch (...) {
        for (auto& t : workers) t.join();
        throw;
    }
    run(0);
    for (auto& t : workers) t.join();
    for (auto& e : errors) {
        if (e) std::rethrow_exception(e);
    }
}

}  // namespace dlu_kernels

#endif  // DLU_PARALLEL_H
