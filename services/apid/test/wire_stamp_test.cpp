#include "wire_stamp.h"

#include <catch2/catch_test_macros.hpp>
#include <string>

#include "keel/machine/v1/machine.pb.h"

namespace keel::apid {
namespace {

namespace machine = keel::machine::v1;

machine::VersionResponse twoVersions() {
  machine::VersionResponse reply;
  auto* a = reply.add_messages();
  a->set_version("1.2.3");
  a->set_git_commit("abcdef123456");
  a->set_arch("amd64");
  auto* b = reply.add_messages();
  b->set_version("1.2.4");
  b->set_build_date("2030-01-01T00:00:00Z");
  b->mutable_metadata()->set_error("disk on fire");
  b->mutable_metadata()->set_code(13);
  return reply;
}

TEST_CASE("every entry of a unary reply gets the node, and nothing else changes", "[wire_stamp]") {
  const auto original = twoVersions();
  const auto stamped = stampUnaryReply(original.SerializeAsString(), "10.0.0.7");
  REQUIRE(stamped.ok());
  machine::VersionResponse parsed;
  REQUIRE(parsed.ParseFromString(*stamped));
  REQUIRE(parsed.messages_size() == 2);
  for (const auto& entry : parsed.messages()) CHECK(entry.metadata().node() == "10.0.0.7");

  CHECK(parsed.messages(0).version() == "1.2.3");
  CHECK(parsed.messages(0).git_commit() == "abcdef123456");
  CHECK(parsed.messages(0).arch() == "amd64");
  CHECK(parsed.messages(0).metadata().error().empty());
  CHECK(parsed.messages(0).metadata().code() == 0);

  CHECK(parsed.messages(1).version() == "1.2.4");
  CHECK(parsed.messages(1).build_date() == "2030-01-01T00:00:00Z");
  // The node's own error stays; only the node name is added.
  CHECK(parsed.messages(1).metadata().error() == "disk on fire");
  CHECK(parsed.messages(1).metadata().code() == 13);

  // Apart from the node, the stamped reply equals the original.
  auto expected = original;
  for (auto& entry : *expected.mutable_messages()) entry.mutable_metadata()->set_node("10.0.0.7");
  CHECK(parsed.SerializeAsString() == expected.SerializeAsString());
}

TEST_CASE("an entry whose length is spelled longer than needed is stamped, with its length in shortest form",
          "[wire_stamp]") {
  // Field 1, length 0 written as a five-byte varint: valid wire format, six bytes.
  const std::string reply("\x0a\x80\x80\x80\x80\x00", 6);
  machine::VersionResponse original;
  REQUIRE(original.ParseFromString(reply));
  REQUIRE(original.messages_size() == 1);
  const auto stamped = stampUnaryReply(reply, "node-a");
  REQUIRE(stamped.ok());
  machine::VersionResponse parsed;
  REQUIRE(parsed.ParseFromString(*stamped));
  REQUIRE(parsed.messages_size() == 1);
  CHECK(parsed.messages(0).metadata().node() == "node-a");
  CHECK(stamped->size() == 2 + 10);  // tag, length, and the 10-byte metadata for "node-a"
}

TEST_CASE("a length spelled in more bytes than protobuf reads is data loss, as protobuf has it", "[wire_stamp]") {
  // Length 0 in ten bytes: protobuf reads a length in at most five.
  const std::string reply("\x0a\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00", 11);
  machine::VersionResponse viaProtobuf;
  CHECK_FALSE(viaProtobuf.ParseFromString(reply));
  const auto stamped = stampUnaryReply(reply, "node-a");
  REQUIRE_FALSE(stamped.ok());
  CHECK(stamped.status().code() == StatusCode::kDataLoss);
}

TEST_CASE("a node name already in an entry is replaced by the stamping node's", "[wire_stamp]") {
  machine::VersionResponse reply;
  reply.add_messages()->mutable_metadata()->set_node("spoofed");
  const auto stamped = stampUnaryReply(reply.SerializeAsString(), "node-a");
  REQUIRE(stamped.ok());
  machine::VersionResponse parsed;
  REQUIRE(parsed.ParseFromString(*stamped));
  REQUIRE(parsed.messages_size() == 1);
  CHECK(parsed.messages(0).metadata().node() == "node-a");
}

TEST_CASE("top-level fields other than the entries are kept as they are", "[wire_stamp]") {
  // Field 2 (bytes), field 3 (varint), field 4 (fixed64) and field 5 (fixed32) around one entry.
  std::string reply;
  reply += std::string("\x12\x03" "abc", 5);
  reply += std::string("\x18\x96\x01", 3);
  reply += std::string("\x21" "12345678", 9);
  reply += std::string("\x0a\x00", 2);  // an empty entry
  reply += std::string("\x2d" "wxyz", 5);
  const auto stamped = stampUnaryReply(reply, "n");
  REQUIRE(stamped.ok());
  // metadata { node: "n" } appended to the empty entry: 0a 03 0a 01 6e, wrapped as entry 0a 05 ...
  const std::string expected = std::string("\x12\x03" "abc" "\x18\x96\x01" "\x21" "12345678", 17) +
                               std::string("\x0a\x05\x0a\x03\x0a\x01n", 7) + std::string("\x2d" "wxyz", 5);
  CHECK(*stamped == expected);
}

TEST_CASE("an empty unary reply stays empty", "[wire_stamp]") {
  const auto stamped = stampUnaryReply("", "node-a");
  REQUIRE(stamped.ok());
  CHECK(stamped->empty());
}

TEST_CASE("a streamed message gets the node and keeps its fields", "[wire_stamp]") {
  machine::LogLine line;
  line.set_line(std::string("hello\0world\n", 12));
  const std::string stamped = stampStreamMessage(line.SerializeAsString(), "10.0.0.7");
  machine::LogLine parsed;
  REQUIRE(parsed.ParseFromString(stamped));
  CHECK(parsed.metadata().node() == "10.0.0.7");
  CHECK(parsed.line() == std::string("hello\0world\n", 12));
}

TEST_CASE("a node's failure reads back as metadata with node, error and code", "[wire_stamp]") {
  SECTION("as a unary reply with one entry") {
    machine::VersionResponse parsed;
    REQUIRE(parsed.ParseFromString(errorUnaryReply("10.0.0.9", 14, "connection refused")));
    REQUIRE(parsed.messages_size() == 1);
    const auto& md = parsed.messages(0).metadata();
    CHECK(md.node() == "10.0.0.9");
    CHECK(md.error() == "connection refused");
    CHECK(md.code() == 14);
    CHECK(parsed.messages(0).version().empty());
  }
  SECTION("as a streamed message") {
    machine::LogLine parsed;
    REQUIRE(parsed.ParseFromString(errorStreamMessage("node-b", 4, "deadline exceeded")));
    CHECK(parsed.metadata().node() == "node-b");
    CHECK(parsed.metadata().error() == "deadline exceeded");
    CHECK(parsed.metadata().code() == 4);
    CHECK(parsed.line().empty());
  }
  SECTION("a negative code survives the varint encoding") {
    machine::LogLine parsed;
    REQUIRE(parsed.ParseFromString(errorStreamMessage("n", -3, "odd")));
    CHECK(parsed.metadata().code() == -3);
  }
}

TEST_CASE("a reply that is not protobuf wire format is data loss", "[wire_stamp]") {
  const std::string valid = twoVersions().SerializeAsString();
  struct Case {
    const char* what;
    std::string bytes;
  };
  const Case cases[] = {
      {"truncated entry", valid.substr(0, valid.size() - 1)},
      {"length beyond the end", std::string("\x0a\x10" "abc", 5)},
      {"length varint cut off", std::string("\x0a\x80", 2)},
      {"field number zero", std::string("\x02\x00", 2)},
      {"tag varint cut off", std::string("\x80", 1)},
      {"varint value cut off", std::string("\x08\xff", 2)},
      {"fixed64 truncated", std::string("\x09" "1234", 5)},
      {"fixed32 truncated", std::string("\x0d" "12", 3)},
      {"start group", std::string("\x0b\x0c", 2)},
      {"end group", std::string("\x0c", 1)},
      {"wire type 6", std::string("\x0e\x00", 2)},
      {"wire type 7", std::string("\x0f\x00", 2)},
      {"overlong varint", std::string("\x08") + std::string(11, '\xff') + std::string("\x01", 1)},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    const auto stamped = stampUnaryReply(c.bytes, "node-a");
    REQUIRE_FALSE(stamped.ok());
    CHECK(stamped.status().code() == StatusCode::kDataLoss);
  }
}

}  // namespace
}  // namespace keel::apid
