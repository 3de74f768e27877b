// duplex/protocol.hpp — the whole sans-I/O protocol layer in one include.
// SPDX-License-Identifier: BSL-1.0
//
// For programs that bring their own I/O (an event loop, a test harness, a fuzzer): HTTP
// upgrade parsing and writing, both handshake roles, ws:// URLs, permessage-deflate negotiation
// (and, with DUPLEX_ENABLE_DEFLATE, its zlib codec), and the per-connection session that turns
// bytes into WebSocket events and back. Nothing here opens a socket, reads a clock or
// starts a thread. See docs/protocol.md.
#pragma once

#include "error.hpp"
#include "protocol/base64.hpp"
#include "protocol/close.hpp"
#include "protocol/extensions.hpp"
#include "protocol/frame.hpp"
#include "protocol/handshake.hpp"
#include "protocol/http.hpp"
#include "protocol/mask.hpp"
#include "protocol/permessage_deflate.hpp"
#include "protocol/progress.hpp"
#include "protocol/random.hpp"
#include "protocol/session.hpp"
#include "protocol/sha1.hpp"
#include "protocol/url.hpp"
#include "protocol/utf8.hpp"
#ifdef DUPLEX_ENABLE_DEFLATE
#include "protocol/deflate_codec.hpp"
#endif
