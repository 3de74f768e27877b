// libFuzzer target: close payloads (close.hpp) and how a session answers them. On every input
// it checks, against rules written out here from RFC 6455 5.5.1 and 7.4:
//   * parse_close_payload() accepts exactly an empty payload (code 1005) or a code that may
//     travel on the wire followed by a UTF-8 reason, and otherwise gives the error the RFC
//     points to (one byte, a code that may not be sent, a reason that is not UTF-8);
//   * make_close_payload() builds exactly the payloads that may be sent, refuses the rest
//     with the documented error and an empty result, and what it builds parses back to the
//     same code and reason;
//   * is_valid_wire_close_code() is the RFC's list, for every 16-bit code;
//   * a session of either role that receives the payload in a close frame reports the close
//     (or fails with 1002 or 1007) and answers with the close frame the RFC asks for, and a
//     session asked to close with the input's code and reason does what
//     make_close_payload() says.
//
// Input: the payload. Its first two bytes, when there are two, are also the code to send.
#include "fuzz_support.hpp"

#include <duplex/protocol/close.hpp>
#include <duplex/protocol/session.hpp>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

using namespace duplex::protocol;
using fuzz::check;

namespace {

// RFC 6455 7.4.1 (1000-1003, 1007-1011), the IANA registry's 1012-1014, and 7.4.2's range
// for libraries, frameworks and applications (3000-4999). 1004 is reserved; 1005, 1006 and
// 1015 are never sent.
bool may_travel_on_wire(unsigned code) {
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

// The big-endian code in a payload's first two bytes.
std::uint16_t code_of(std::string_view payload) {
    return static_cast<std::uint16_t>(unsigned{static_cast<unsigned char>(payload[0])} << 8U |
                                      unsigned{static_cast<unsigned char>(payload[1])});
}

std::error_code expected_parse(std::string_view payload) {
    if (payload.empty()) return {};
    if (payload.size() == 1) return duplex::error::bad_close_payload;
    if (!may_travel_on_wire(code_of(payload))) return duplex::error::bad_close_code;
    if (!fuzz::reference_is_utf8(payload.substr(2))) return duplex::error::invalid_utf8;
    return {};
}

std::error_code expected_make(std::uint16_t code, std::string_view reason) {
    if (code == 1005) return reason.empty() ? std::error_code() : duplex::error::bad_close_code;
    if (!may_travel_on_wire(code)) return duplex::error::bad_close_code;
    if (reason.size() > 123) return duplex::error::control_payload_too_big; // 125 - the code
    if (!fuzz::reference_is_utf8(reason)) return duplex::error::invalid_utf8;
    return {};
}

void check_every_code_once() {
    static const bool checked = [] {
        for (unsigned code = 0; code <= 0xFFFF; ++code)
            check(is_valid_wire_close_code(static_cast<std::uint16_t>(code)) ==
                      may_travel_on_wire(code),
                  "is_valid_wire_close_code() is not the RFC's list");
        return true;
    }();
    (void)checked;
}

std::string frame(std::string_view payload, bool masked) {
    std::string out;
    out += '\x88'; // FIN, close
    out += static_cast<char>((masked ? 0x80U : 0U) | payload.size());
    const unsigned char key[4] = {0x37, 0xFA, 0x21, 0x3D};
    if (masked) out.append(reinterpret_cast<const char*>(key), 4);
    for (std::size_t i = 0; i < payload.size(); ++i)
        out +=
            static_cast<char>(static_cast<unsigned char>(payload[i]) ^ (masked ? key[i % 4] : 0U));
    return out;
}

// The close frame a server sends (unmasked): its payload.
std::string server_close_payload(std::string_view sent) {
    check(sent.size() >= 2 && static_cast<unsigned char>(sent[0]) == 0x88 &&
              static_cast<unsigned char>(sent[1]) == sent.size() - 2,
          "the answer is not one unmasked close frame");
    return std::string(sent.substr(2));
}

void check_session_receives(std::string_view payload, std::error_code parse_error) {
    session s(role::server, {}, {1, 2, 3, 4, 5, 6, 7, 8});
    std::string wire = frame(payload, true);
    const auto r = s.receive(wire.data(), wire.size());
    check(r.consumed == wire.size(), "the close frame was not consumed");
    const std::string answer = server_close_payload(s.pending_output());
    if (parse_error) {
        const std::uint16_t code = parse_error == duplex::error::invalid_utf8 ? 1007 : 1002;
        check(r.ev.type == event_type::error && r.ev.error == parse_error && r.ev.code == code,
              "a bad close payload failed otherwise");
        check(s.state() == session_state::failed && !s.close_received(),
              "a bad close left the session usable");
        check(answer.size() >= 2 && static_cast<unsigned char>(answer[0]) == code >> 8U &&
                  static_cast<unsigned char>(answer[1]) == (code & 0xFFU),
              "the failure close carries another code");
        return;
    }
    const std::uint16_t code = payload.empty() ? std::uint16_t{1005} : code_of(payload);
    const std::string_view reason = payload.empty() ? payload : payload.substr(2);
    check(r.ev.type == event_type::close && r.ev.code == code && r.ev.data == reason,
          "a valid close was reported otherwise");
    check(s.state() == session_state::closed && s.close_received() && s.peer_close_code() == code &&
              s.peer_close_reason() == reason,
          "the session does not remember the close");
    // 5.5.1: echo the status code; a close without one is answered without one.
    check(answer == (payload.empty() ? std::string() : std::string(payload.substr(0, 2))),
          "the close reply does not echo the code");
    check(s.close(1000) == duplex::error::closed, "close() after the close handshake");

    // A client reads the same payload unmasked, and is answered with a masked close.
    session c(role::client, {}, {1, 2, 3, 4, 5, 6, 7, 8});
    wire = frame(payload, false);
    const auto rc = c.receive(wire.data(), wire.size());
    check(rc.ev.type == event_type::close && rc.ev.code == code && rc.ev.data == reason,
          "a client read the close otherwise");
    const std::string_view sent = c.pending_output();
    check(sent.size() == 6 + (payload.empty() ? 0U : 2U) &&
              static_cast<unsigned char>(sent[1]) == (0x80U | (sent.size() - 6)),
          "a client's close reply is not one masked close frame");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    check_every_code_once();
    const std::string_view payload(reinterpret_cast<const char*>(data), size);

    close_reason parsed;
    const std::error_code parse_error = parse_close_payload(payload, parsed);
    check(parse_error == expected_parse(payload), "parse_close_payload() differs from the RFC");
    if (!parse_error) {
        if (payload.empty()) {
            check(parsed.code == 1005 && parsed.reason.empty(), "an empty close is not 1005");
        } else {
            check(parsed.code == code_of(payload) && parsed.reason == payload.substr(2) &&
                      parsed.reason.data() == payload.data() + 2,
                  "the parsed code or reason is not the payload's");
        }
    }
    if (payload.size() <= 125) check_session_receives(payload, parse_error);

    // Sending: the input's first two bytes as the code (1005, no code, when there are fewer),
    // the rest as the reason.
    const std::uint16_t code = size >= 2 ? code_of(payload) : std::uint16_t{1005};
    const std::string_view reason = size >= 2 ? payload.substr(2) : std::string_view();
    std::string made = "left over";
    const std::error_code make_error = make_close_payload(code, reason, made);
    check(make_error == expected_make(code, reason), "make_close_payload() differs from the RFC");
    session s(role::server, {}, {1, 2, 3, 4, 5, 6, 7, 8});
    check(s.close(code, reason) == make_error, "session::close() and make_close_payload() differ");
    if (make_error) {
        check(made.empty(), "a refused close payload left output");
        check(s.state() == session_state::open && !s.has_pending_output(),
              "a refused close() changed the session");
        return 0;
    }
    check(made.size() == (code == 1005 ? 0U : 2U + reason.size()), "a close payload of odd size");
    close_reason back;
    check(!parse_close_payload(made, back) && back.code == code && back.reason == reason,
          "a made close payload does not parse back the same");
    check(s.state() == session_state::closing && server_close_payload(s.pending_output()) == made,
          "session::close() sent another payload");
    return 0;
}
