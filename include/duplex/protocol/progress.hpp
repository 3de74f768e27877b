// duplex/protocol/progress.hpp — how far an incremental parser or decoder has got.
// SPDX-License-Identifier: BSL-1.0
//
// Every piece of the protocol layer that is fed bytes in pieces (the HTTP head parser, both
// handshake roles, the frame header decoder) answers with the same three outcomes, so a
// caller's loop reads the same wherever it is: feed until it is no longer need_more.
#pragma once

namespace duplex::protocol {

enum class progress {
    need_more, // everything given was taken; feed more
    done,      // complete; bytes after it were not consumed
    failed,    // malformed or over a limit; the error says why, and more input changes nothing
};

} // namespace duplex::protocol
