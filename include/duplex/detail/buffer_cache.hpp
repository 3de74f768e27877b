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

} // namespace duplex::detail
