// Capture of a service's output: reads one of its stdout/stderr pipes on the supervisor's
// io thread and appends what arrives to the service's log, line by line.
#pragma once

#include <array>
#include <cstddef>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include "keel/common/fd_io.h"
#include "keel/supervisor/log_store.h"

namespace keel::supervisor {

// Lines longer than the store's limit are handed on in pieces as they arrive, so a writer
// without newlines cannot grow the buffer. Lives as long as a read is pending; ends at
// EOF or close(). Io thread only.
class PipeReader : public std::enable_shared_from_this<PipeReader> {
 public:
  // `store` must have a log `id`.
  PipeReader(boost::asio::io_context& io, UniqueFd fd, std::shared_ptr<LogStore> store, std::string id);

  void start() { readSome(); }
  // Stops reading; what is buffered of an unfinished line is appended.
  void close();

 private:
  void readSome();
  void consume(size_t n);
  void flush();

  boost::asio::posix::stream_descriptor stream_;
  std::shared_ptr<LogStore> store_;
  std::string id_;
  size_t maxLine_;
  std::array<char, 16384> buffer_{};
  std::string partial_;
};

}  // namespace keel::supervisor
