// duplex/detail/buffer_cache.hpp — output buffers reused within an io thread.
// SPDX-License-Identifier: BSL-1.0
//
// A connection copies each message it sends from a handler into a buffer that lives until
// the write completes, usually microseconds later. Freeing and allocating that buffer for
// every message sends large ones back to the operating system and faults their pages in
// again (glibc trims the top of the heap past 128 KiB): echoing 16 KiB messages ran at 0.6 of
// the plain-TCP rate for that alone. So each thread keeps a few freed buffers for the next
// messages. Bounded: at most `max_buffers` buffers of at most `max_capacity` bytes per thread,
// whatever the number of connections; idle connections own none.
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace duplex::detail {

class buffer_cache {
public:
    static constexpr std::size_t max_buffers = 8;
    static constexpr std::size_t max_capacity = 256U * 1024U;
    static constexpr std::size_t min_capacity = 512; // never in a string's inline storage

    // An empty string with room for at least `capacity` bytes.
    static std::string take(std::size_t capacity) {
        auto& spare = buffers();
        std::string out;
        for (std::size_t i = spare.size(); i-- > 0;) {
            if (spare[i].capacity() >= capacity) {
                out = std::move(spare[i]);
                spare[i] = std::move(spare.back());
                spare.pop_back();
                return out;
            }
        }
        out.reserve(capacity < min_capacity ? min_capacity : capacity);
        return out;
    }

    // Keeps `buffer` for a later take() if it is worth keeping and there is room.
    static void give(std::string&& buffer) {
        const std::size_t capacity = buffer.capacity();
        if (capacity < min_capacity || capacity > max_capacity) return;
        auto& spare = buffers();
        if (spare.size() >= max_buffers) return;
        buffer.clear();
        spare.push_back(std::move(buffer));
    }

private:
    static std::vector<std::string>& buffers() {
        thread_local std::vector<std::string> spare;
        return spare;
    }
};

// The storage of a connection's short-lived vectors (its write queue, its inbox), reused
// within an io thread. A broadcast fills each member's queue with a turn's frames and empties
// it by the write that follows at once; allocating that storage per member per turn, and
// freeing it, cost a broadcast as much as framing its messages (malloc, and page faults where
// glibc trimmed the heap in between). Handed back here when a queue empties, the storage also
// leaves the connection: an idle connection owns none. Bounded per thread and element type:
// at most `max_bytes` of storage, vectors of at most `max_elements` each.
template <class T>
class vector_cache {
public:
    static constexpr std::size_t max_bytes = 1U << 20;
    static constexpr std::size_t max_elements = 256;

    // An empty vector, with the storage of a cached one when there is one.
    static std::vector<T> take() {
        auto& c = cache();
        if (c.vectors.empty()) return {};
        std::vector<T> out = std::move(c.vectors.back());
        c.vectors.pop_back();
        c.bytes -= out.capacity() * sizeof(T);
        return out;
    }

    // Empties `v` and keeps its storage if it is worth keeping and there is room; `v` owns no
    // storage afterwards either way.
    static void give(std::vector<T>& v) {
        v.clear();
        auto& c = cache();
        const std::size_t bytes = v.capacity() * sizeof(T);
        if (v.capacity() != 0 && v.capacity() <= max_elements && c.bytes + bytes <= max_bytes) {
            c.vectors.push_back(std::move(v));
            c.bytes += bytes;
        }
        std::vector<T>().swap(v);
    }

private:
    struct store {
        std::vector<std::vector<T>> vectors;
        std::size_t bytes = 0;
    };
    static store& cache() {
        thread_local store c;
        return c;
    }
};

} // namespace duplex::detail
