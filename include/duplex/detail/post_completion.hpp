// duplex/detail/post_completion.hpp — completing an operation that finished without I/O.
// SPDX-License-Identifier: BSL-1.0
//
// Transports complete some operations at once (a TCP "handshake", a shutdown, a check that
// failed before any I/O). They still complete them as Asio's own operations do, so that
// callers can rely on one rule: never inside the initiating call, and on the handler's
// associated executor (the strand it was bound to).
#pragma once

#include <asio/associated_executor.hpp>
#include <asio/bind_executor.hpp>
#include <asio/post.hpp>

#include <system_error>
#include <utility>

namespace duplex::detail {

// Posts handler(ec) to `io_executor` (the stream's), to run on the handler's associated
// executor.
template <class Executor, class Handler>
void post_completion(const Executor& io_executor, Handler&& handler, std::error_code ec) {
    auto executor = asio::get_associated_executor(handler, io_executor);
    asio::post(io_executor, asio::bind_executor(executor, [h = std::forward<Handler>(handler),
                                                           ec]() mutable { h(ec); }));
}

} // namespace duplex::detail
