#include "engine/annotate/auth.h"

#include <cstdio>
#include <random>
#include <sstream>

namespace sam::annotate {

std::string host_name_of(const std::string& host_header) {
  if (!host_header.empty() && host_header[0] == '[') {
    const auto end = host_header.find(']');
    return end == std::string::npos ? host_header : host_header.substr(1, end - 1);
  }
  return host_header.substr(0, host_header.find(':'));
}

bool same_secret(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char d = 0;
  for (size_t i = 0; i < a.size(); ++i) d |= static_cast<unsigned char>(a[i] ^ b[i]);
  return d == 0;
}

std::string cookie_value(const std::string& cookies, const std::string& name) {
  std::istringstream in(cookies);
  std::string part;
  while (std::getline(in, part, ';')) {
    const auto b = part.find_first_not_of(' ');
    if (b == std::string::npos) continue;
    part = part.substr(b);
    if (part.compare(0, name.size() + 1, name + "=") == 0) return part.substr(name.size() + 1);
  }
  return "";
}

bool is_loopback_host(const std::string& host) {
  if (host == "localhost" || host == "::1" || host == "[::1]") return true;
  // 127.0.0.0/8 in dotted decimal.
  unsigned a, b, c, d;
  char tail;
  if (std::sscanf(host.c_str(), "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) == 4)
    return a == 127 && b < 256 && c < 256 && d < 256;
  return false;
}

std::string make_token() {
  std::random_device rd;
  std::ostringstream s;
  for (int i = 0; i < 4; ++i) {
    char buf[9];
    std::snprintf(buf, sizeof buf, "%08x", static_cast<unsigned>(rd()));
    s << buf;
  }
  return s.str();
}

}  // namespace sam::annotate
