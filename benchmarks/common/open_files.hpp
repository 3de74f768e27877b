// benchmarks/common/open_files.hpp — lets a benchmark program hold as many sockets as the
// system allows. Broadcast and idle runs open ten thousand connections and more, past the
// usual soft limit of 1024 descriptors. Shared by the load generator and every peer server;
// it is not duplex code.
#pragma once

#include <sys/resource.h>

namespace bench {

// Raises the soft limit on open descriptors to the hard limit.
inline void raise_open_file_limit() {
    rlimit limit{};
    getrlimit(RLIMIT_NOFILE, &limit);
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
}

} // namespace bench
