#include "pipe_reader.h"

#include <string_view>
#include <utility>

#include <boost/asio/buffer.hpp>

namespace keel::supervisor {

namespace asio = boost::asio;

PipeReader::PipeReader(asio::io_context& io, UniqueFd fd, std::shared_ptr<LogStore> store, std::string id)
    : stream_(io, fd.release()),
      store_(std::move(store)),
      id_(std::move(id)),
      maxLine_(store_->options().maxLineLength) {}

void PipeReader::close() {
  boost::system::error_code ignored;
  stream_.close(ignored);
}

void PipeReader::readSome() {
  stream_.async_read_some(asio::buffer(buffer_),
                          [self = shared_from_this()](const boost::system::error_code& ec, size_t n) {
                            self->consume(n);
                            if (ec) {
                              self->flush();
                              return;
                            }
                            self->readSome();
                          });
}

void PipeReader::consume(size_t n) {
  partial_.append(buffer_.data(), n);
  const size_t newline = partial_.rfind('\n');
  size_t cut = newline == std::string::npos ? 0 : newline + 1;
  // Keep 1..maxLine_ bytes of an unfinished line: a line of exactly maxLine_ bytes whose
  // '\n' comes in the next read must not produce an extra empty line.
  const size_t rest = partial_.size() - cut;
  if (rest > maxLine_) cut += (rest - 1) / maxLine_ * maxLine_;
  if (cut == 0) return;
  (void)store_->append(id_, std::string_view(partial_).substr(0, cut));  // the log exists for every service
  partial_.erase(0, cut);
}

void PipeReader::flush() {
  if (!partial_.empty()) (void)store_->append(id_, partial_);
  partial_.clear();
}

}  // namespace keel::supervisor
