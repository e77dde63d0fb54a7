#pragma once
// Who may use the annotation server: loopback hosts, the token (a header, a query parameter or the
// cookie the page sets), compared in constant time.
#include <string>

namespace sam::annotate {

/// True for 127.0.0.0/8, ::1 and "localhost".
bool is_loopback_host(const std::string& host);

/// A random 128-bit token as 32 hex digits (from std::random_device).
std::string make_token();

/// The host name of an HTTP Host header: "[::1]:8080" -> "::1", "example.org:80" -> "example.org".
std::string host_name_of(const std::string& host_header);

/// a == b, in time that depends on the length only (the token must not leak through timing).
bool same_secret(const std::string& a, const std::string& b);

/// The value of cookie `name` in a Cookie header ("a=1; b=2"), or "".
std::string cookie_value(const std::string& cookies, const std::string& name);

}  // namespace sam::annotate
