#include "keel/transport/tls.h"

#include <openssl/bio.h>
#include <openssl/conf.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <memory>
#include <mutex>
#include <string>

namespace keel::transport {

namespace {

// An application section naming the ssl module, whose system_default applies to every
// SSL_CTX created afterwards.
constexpr char kConfig[] =
    "keel_tls = keel_tls_modules\n"
    "[keel_tls_modules]\n"
    "ssl_conf = keel_tls_ssl\n"
    "[keel_tls_ssl]\n"
    "system_default = keel_tls_default\n"
    "[keel_tls_default]\n"
    "Protocol = -ALL, TLSv1.3\n"
    "NumTickets = 0\n";

std::string opensslError() {
  const unsigned long e = ERR_get_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

Status load() {
  // The system's configuration first (loaded once per process): loading it after ours
  // would replace our system_default.
  if (OPENSSL_init_ssl(OPENSSL_INIT_LOAD_CONFIG, nullptr) != 1) {
    return internalError("OpenSSL initialization failed: " + opensslError());
  }
  std::unique_ptr<CONF, decltype(&NCONF_free)> conf(NCONF_new(nullptr), NCONF_free);
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(kConfig, -1), BIO_free);
  if (!conf || !bio) return internalError("out of memory loading the TLS configuration");
  long line = 0;
  if (NCONF_load_bio(conf.get(), bio.get(), &line) <= 0) {
    return internalError("the built-in TLS configuration does not parse at line " + std::to_string(line));
  }
  if (CONF_modules_load(conf.get(), "keel_tls", 0) <= 0) {
    return internalError("the built-in TLS configuration was refused: " + opensslError());
  }
  return Status::ok();
}

}  // namespace

Status applyTlsPolicy() {
  static std::once_flag once;
  static Status result;
  std::call_once(once, [] { result = load(); });
  return result;
}

}  // namespace keel::transport
