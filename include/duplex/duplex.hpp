// duplex/duplex.hpp — everything a typical duplex user needs, in one include.
//
// Today that is the protocol layer (duplex/protocol.hpp). The Asio transports, connection,
// server, client and rooms join this header as they land; users never include detail/.
#pragma once

#include "protocol.hpp"
