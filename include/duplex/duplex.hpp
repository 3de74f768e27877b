// duplex/duplex.hpp — everything a typical duplex user needs, in one include.
// SPDX-License-Identifier: BSL-1.0
//
// The protocol layer, the plain TCP transport, connections, the server and the client. TLS
// (wss://) comes with it when DUPLEX_ENABLE_TLS is defined (the CMake target duplex::tls does
// that), so that ws://-only programs need neither OpenSSL nor its headers.
#pragma once

#include "protocol.hpp"

#include "connection.hpp"
#include "rooms.hpp"
#include "server.hpp"
#include "transport/tcp.hpp"

#include "client.hpp"

#if defined(DUPLEX_ENABLE_TLS)
#include "transport/tls.hpp"
#endif
