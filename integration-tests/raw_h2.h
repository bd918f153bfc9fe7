// A bare TLS 1.3 + HTTP/2 client on OpenSSL, for sending apid what no gRPC client would:
// header names in upper case, frames built by hand. It speaks just enough HTTP/2 to make
// one request per stream and see how the stream ended; it never decodes HPACK.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch_test_macros.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "keel/common/fd_io.h"

namespace keel::integration {

class RawH2Client {
 public:
  struct Frame {
    uint8_t type = 0;
    uint8_t flags = 0;
    uint32_t stream = 0;
    std::string payload;
  };
  enum class End { kEndStream, kReset, kGoAway, kClosed };

  static constexpr uint8_t kData = 0x0, kHeaders = 0x1, kRstStream = 0x3, kSettings = 0x4, kPing = 0x6,
                           kGoAway = 0x7;
  static constexpr uint8_t kEndStreamFlag = 0x1, kAckFlag = 0x1, kEndHeadersFlag = 0x4;

  // Connects and completes the TLS handshake; `error()` says why when it did not.
  RawH2Client(const std::string& host, int port, const std::string& caPem, const std::string& certPem,
              const std::string& keyPem)
      : ctx_(SSL_CTX_new(TLS_client_method()), SSL_CTX_free), ssl_(nullptr, SSL_free) {
    REQUIRE(ctx_);
    SSL_CTX_set_min_proto_version(ctx_.get(), TLS1_3_VERSION);
    X509* cert = readPem(certPem, PEM_read_bio_X509);
    EVP_PKEY* key = readPem(keyPem, PEM_read_bio_PrivateKey);
    X509* ca = readPem(caPem, PEM_read_bio_X509);
    REQUIRE((cert != nullptr && key != nullptr && ca != nullptr));
    REQUIRE(SSL_CTX_use_certificate(ctx_.get(), cert) == 1);
    REQUIRE(SSL_CTX_use_PrivateKey(ctx_.get(), key) == 1);
    REQUIRE(X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx_.get()), ca) == 1);
    X509_free(cert);
    EVP_PKEY_free(key);
    X509_free(ca);
    SSL_CTX_set_verify(ctx_.get(), SSL_VERIFY_PEER, nullptr);
    static const unsigned char kAlpn[] = {2, 'h', '2'};
    SSL_CTX_set_alpn_protos(ctx_.get(), kAlpn, sizeof kAlpn);
    // Called once per session ticket received: TLS 1.3 hands out sessions only that way.
    SSL_CTX_set_session_cache_mode(ctx_.get(), SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx_.get(), [](SSL* ssl, SSL_SESSION*) {
      ++static_cast<RawH2Client*>(SSL_get_app_data(ssl))->tickets_;
      return 0;
    });

    fd_.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(static_cast<bool>(fd_));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    REQUIRE(::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) == 1);
    REQUIRE(::connect(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    timeval tv{5, 0};  // no read waits longer
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ssl_.reset(SSL_new(ctx_.get()));
    SSL_set_app_data(ssl_.get(), this);
    SSL_set_fd(ssl_.get(), fd_.get());
    if (SSL_connect(ssl_.get()) != 1) {
      error_ = "TLS handshake failed: " + std::string(ERR_error_string(ERR_get_error(), nullptr));
    }
  }
  ~RawH2Client() {
    if (ssl_ && error_.empty()) SSL_shutdown(ssl_.get());
  }
  RawH2Client(const RawH2Client&) = delete;
  RawH2Client& operator=(const RawH2Client&) = delete;

  bool connected() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  int ticketsReceived() const { return tickets_; }

  // The connection preface and an empty SETTINGS frame; then waits for the server's
  // SETTINGS and acknowledges them. False if the server sent none.
  bool start() {
    static const char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    writeAll(std::string(kPreface, sizeof kPreface - 1));
    send({kSettings, 0, 0, ""});
    while (auto f = readFrame()) {
      if (f->type == kSettings && (f->flags & kAckFlag) == 0) {
        send({kSettings, kAckFlag, 0, ""});
        return true;
      }
    }
    return false;
  }

  void send(const Frame& f) {
    std::string out;
    const auto len = static_cast<uint32_t>(f.payload.size());
    out.push_back(static_cast<char>(len >> 16));
    out.push_back(static_cast<char>(len >> 8));
    out.push_back(static_cast<char>(len));
    out.push_back(static_cast<char>(f.type));
    out.push_back(static_cast<char>(f.flags));
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((f.stream >> shift) & 0xFF));
    out += f.payload;
    writeAll(out);
  }

  // The next frame, or nullopt once the connection is closed or silent for 5 s.
  std::optional<Frame> readFrame() {
    if (!fill(9)) return std::nullopt;
    const auto* h = reinterpret_cast<const unsigned char*>(buffer_.data());
    const size_t len = (size_t{h[0]} << 16) | (size_t{h[1]} << 8) | h[2];
    Frame f;
    f.type = h[3];
    f.flags = h[4];
    f.stream = ((uint32_t{h[5]} & 0x7F) << 24) | (uint32_t{h[6]} << 16) | (uint32_t{h[7]} << 8) | h[8];
    if (!fill(9 + len)) return std::nullopt;
    f.payload = buffer_.substr(9, len);
    buffer_.erase(0, 9 + len);
    return f;
  }

  // Sends one gRPC request on `stream` (headers as given, in order, then `message` as one
  // length-prefixed gRPC message with END_STREAM) and reads until the stream ends.
  End request(uint32_t stream, const std::vector<std::pair<std::string, std::string>>& headers,
              const std::string& message) {
    std::string block;
    for (const auto& [name, value] : headers) appendLiteral(block, name, value);
    send({kHeaders, kEndHeadersFlag, stream, block});
    std::string data(5, '\0');
    const auto n = static_cast<uint32_t>(message.size());
    for (int i = 0; i < 4; ++i) data[1 + i] = static_cast<char>((n >> (24 - 8 * i)) & 0xFF);
    send({kData, kEndStreamFlag, stream, data + message});
    while (auto f = readFrame()) {
      if (f->type == kGoAway) return End::kGoAway;
      if (f->type == kSettings && (f->flags & kAckFlag) == 0) send({kSettings, kAckFlag, 0, ""});
      if (f->type == kPing && (f->flags & kAckFlag) == 0) send({kPing, kAckFlag, 0, f->payload});
      if (f->stream != stream) continue;
      if (f->type == kRstStream) return End::kReset;
      if ((f->type == kHeaders || f->type == kData) && (f->flags & kEndStreamFlag) != 0) return End::kEndStream;
    }
    return End::kClosed;
  }

  // An HPACK "literal header field without indexing, new name", no Huffman coding: the
  // name goes on the wire exactly as given, upper case included (RFC 7541, 6.2.2).
  static void appendLiteral(std::string& block, const std::string& name, const std::string& value) {
    block.push_back('\0');
    appendLength(block, name.size());
    block += name;
    appendLength(block, value.size());
    block += value;
  }

 private:
  // A 7-bit-prefix HPACK integer with the Huffman bit clear (RFC 7541, 5.1).
  static void appendLength(std::string& out, size_t n) {
    if (n < 127) {
      out.push_back(static_cast<char>(n));
      return;
    }
    out.push_back(static_cast<char>(127));
    n -= 127;
    while (n >= 128) {
      out.push_back(static_cast<char>((n % 128) + 128));
      n /= 128;
    }
    out.push_back(static_cast<char>(n));
  }

  template <typename T>
  static T* readPem(const std::string& pem, T* (*read)(BIO*, T**, pem_password_cb*, void*)) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())),
                                                  BIO_free);
    return read(bio.get(), nullptr, nullptr, nullptr);
  }

  void writeAll(const std::string& bytes) {
    REQUIRE(connected());
    REQUIRE(SSL_write(ssl_.get(), bytes.data(), static_cast<int>(bytes.size())) == static_cast<int>(bytes.size()));
  }

  bool fill(size_t want) {
    char buf[16384];
    while (buffer_.size() < want) {
      const int n = SSL_read(ssl_.get(), buf, sizeof buf);
      if (n <= 0) return false;
      buffer_.append(buf, static_cast<size_t>(n));
    }
    return true;
  }

  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx_;
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl_;
  keel::UniqueFd fd_;
  int tickets_ = 0;
  std::string error_;
  std::string buffer_;
};

}  // namespace keel::integration
