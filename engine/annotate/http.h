#pragma once
// cpp-httplib as Debian ships it: a shared library (libcpp-httplib) built with OpenSSL, zlib and
// Brotli support. Its classes change layout with those switches, so every user must see the same
// definitions as the library was built with (pkg-config's Cflags); include httplib through here.
#ifndef CPPHTTPLIB_OPENSSL_SUPPORT
#define CPPHTTPLIB_OPENSSL_SUPPORT 1
#endif
#ifndef CPPHTTPLIB_ZLIB_SUPPORT
#define CPPHTTPLIB_ZLIB_SUPPORT 1
#endif
#ifndef CPPHTTPLIB_BROTLI_SUPPORT
#define CPPHTTPLIB_BROTLI_SUPPORT 1
#endif
#include <httplib.h>
