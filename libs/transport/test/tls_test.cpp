#include "keel/transport/tls.h"

#include <openssl/ssl.h>

#include <catch2/catch_test_macros.hpp>

namespace {

TEST_CASE("after applyTlsPolicy every new TLS context speaks TLS 1.3 only and a server sends no tickets") {
  REQUIRE(keel::transport::applyTlsPolicy().isOk());
  REQUIRE(keel::transport::applyTlsPolicy().isOk());  // idempotent
  struct Case {
    const SSL_METHOD* method;
    bool server;
  };
  for (const auto& [method, server] :
       {Case{TLS_method(), true}, Case{TLS_server_method(), true}, Case{TLS_client_method(), false}}) {
    SSL_CTX* ctx = SSL_CTX_new(method);
    REQUIRE(ctx != nullptr);
    const uint64_t options = SSL_CTX_get_options(ctx);
    CHECK((options & SSL_OP_NO_TLSv1_2) != 0);
    CHECK((options & SSL_OP_NO_TLSv1_1) != 0);
    CHECK((options & SSL_OP_NO_TLSv1) != 0);
    CHECK((options & SSL_OP_NO_TLSv1_3) == 0);
    // OpenSSL sends two tickets by default; the setting applies to contexts that can serve.
    CHECK(SSL_CTX_get_num_tickets(ctx) == (server ? 0U : 2U));
    SSL_CTX_free(ctx);
  }
}

}  // namespace
