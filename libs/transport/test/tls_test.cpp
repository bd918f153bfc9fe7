#include "keel/transport/tls.h"

#include <openssl/ssl.h>

#include <catch2/catch_test_macros.hpp>

namespace {

TEST_CASE("after restrictToTls13 every new TLS context speaks TLS 1.3 only") {
  REQUIRE(keel::transport::restrictToTls13().isOk());
  REQUIRE(keel::transport::restrictToTls13().isOk());  // idempotent
  for (const SSL_METHOD* method : {TLS_method(), TLS_server_method(), TLS_client_method()}) {
    SSL_CTX* ctx = SSL_CTX_new(method);
    REQUIRE(ctx != nullptr);
    const uint64_t options = SSL_CTX_get_options(ctx);
    CHECK((options & SSL_OP_NO_TLSv1_2) != 0);
    CHECK((options & SSL_OP_NO_TLSv1_1) != 0);
    CHECK((options & SSL_OP_NO_TLSv1) != 0);
    CHECK((options & SSL_OP_NO_TLSv1_3) == 0);
    SSL_CTX_free(ctx);
  }
}

}  // namespace
