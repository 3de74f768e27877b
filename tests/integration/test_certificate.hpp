// A throw-away self-signed certificate for localhost and 127.0.0.1, made with the openssl
// command once per test run, so that no key is ever committed. Shared by the TLS tests.
#pragma once

#include "catch.hpp"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include <unistd.h>

namespace duplex_test {

// A self-signed certificate for localhost and 127.0.0.1, made once per test run.
struct test_certificate {
    std::string dir, cert, key;
    bool ok = false;

    test_certificate() {
        char pattern[] = "/tmp/duplex-tls-XXXXXX";
        if (!::mkdtemp(pattern)) return;
        dir = pattern;
        cert = dir + "/cert.pem";
        key = dir + "/key.pem";
        const std::string command =
            "openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost"
            " -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -days 2 -keyout " +
            key + " -out " + cert + " >/dev/null 2>&1";
        ok = std::system(command.c_str()) == 0 && std::ifstream(cert).good();
    }
    ~test_certificate() {
        std::remove(cert.c_str());
        std::remove(key.c_str());
        if (!dir.empty()) ::rmdir(dir.c_str());
    }
};

inline const test_certificate& certificate() {
    static test_certificate instance;
    return instance;
}

inline void require_certificate() {
    INFO("the TLS tests make a throw-away certificate with the openssl command: is it on PATH?");
    REQUIRE(certificate().ok);
}

} // namespace duplex_test

using duplex_test::certificate;
using duplex_test::require_certificate;
