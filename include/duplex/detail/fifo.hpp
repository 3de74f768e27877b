// duplex/detail/fifo.hpp — the queue behind a connection's outgoing frames.
// SPDX-License-Identifier: BSL-1.0
//
// std::deque allocates a map and a 512-byte block as soon as it is constructed, which an idle
// connection pays for nothing. This queue is a vector read from a moving head: empty, it owns
// no memory (its storage goes back to the thread's vector_cache); busy, it reuses its storage
// without an allocation per frame. Elements may move
// when it grows or compacts, so they must not be referred to by address across a push
// (outgoing frames keep their bytes on the heap, which a move does not relocate).
#pragma once

#include "buffer_cache.hpp"

#include <cstddef>
#include <utility>
#include <vector>

namespace duplex::detail {

template <class T>
class fifo {
public:
    bool empty() const noexcept { return head_ == items_.size(); }
    std::size_t size() const noexcept { return items_.size() - head_; }
    T& front() noexcept { return items_[head_]; }
    T& back() noexcept { return items_.back(); }
    T& operator[](std::size_t i) noexcept { return items_[head_ + i]; }
    auto begin() noexcept { return items_.begin() + static_cast<std::ptrdiff_t>(head_); }
    auto end() noexcept { return items_.end(); }

    void push_back(T&& item) {
        if (items_.capacity() == 0) items_ = vector_cache<T>::take();
        items_.push_back(std::move(item));
    }

    void pop_front() {
        items_[head_] = T{}; // release what it holds now, not at the next compaction
        ++head_;
        if (empty())
            reset();
        else if (head_ >= compact_after && head_ * 2 >= items_.size())
            compact();
    }

    void pop_back() {
        items_.pop_back();
        if (empty()) reset();
    }

private:
    static constexpr std::size_t compact_after = 32;

    // Empty: the storage goes back to the thread's cache, for whichever queue fills next.
    void reset() {
        head_ = 0;
        vector_cache<T>::give(items_);
    }

    void compact() {
        items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
        head_ = 0;
    }

    std::vector<T> items_;
    std::size_t head_ = 0;
};

} // namespace duplex::detail
