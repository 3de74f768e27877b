// duplex/detail/post_completion.hpp — how every asynchronous operation completes.
// SPDX-License-Identifier: BSL-1.0
//
// Transports complete some operations at once (a TCP "handshake", a shutdown, a check that
// failed before any I/O). They still complete them as Asio's own operations do, so that
// callers can rely on one rule: never inside the initiating call, and on the handler's
// associated executor (the strand it was bound to). post_completion_to() makes the same
// promise for operations that complete later: it wraps their handler.
#pragma once

#include "unique_function.hpp"

#include <asio/associated_executor.hpp>
#include <asio/bind_executor.hpp>
#include <asio/post.hpp>

#include <system_error>
#include <tuple>
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

// Wraps an asynchronous operation's handler so that it runs on its own associated executor (a
// coroutine's, a strand's), else on `fallback`, and never inside the call that completes it.
template <class... Args, class Handler, class Executor>
unique_function<void(Args...)> post_completion_to(Handler handler, const Executor& fallback) {
    return [handler = std::move(handler), fallback](Args... args) mutable {
        auto ex = asio::get_associated_executor(handler, fallback);
        asio::post(ex, [handler = std::move(handler),
                        values = std::make_tuple(std::move(args)...)]() mutable {
            std::apply(handler, std::move(values));
        });
    };
}

} // namespace duplex::detail
