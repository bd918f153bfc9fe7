#include "node_calls.h"

#include <algorithm>

#include <fmt/format.h>

namespace keel::keelctl {

StreamCancel& StreamCancel::instance() {
  static StreamCancel s;
  return s;
}

void StreamCancel::set(grpc::ClientContext* ctx) {
  std::lock_guard lock(mu_);
  ctx_ = ctx;
  if (cancelled_ && ctx_ != nullptr) ctx_->TryCancel();
}

void StreamCancel::clear() {
  std::lock_guard lock(mu_);
  ctx_ = nullptr;
}

bool StreamCancel::cancel() {
  std::lock_guard lock(mu_);
  cancelled_ = true;
  if (ctx_ == nullptr) return false;
  ctx_->TryCancel();
  return true;
}

bool StreamCancel::cancelled() const {
  std::lock_guard lock(mu_);
  return cancelled_;
}

const std::string& nodeOf(const keel::common::v1::Metadata& m) {
  static const std::string kLocal = "local";
  return m.node().empty() ? kLocal : m.node();
}

bool NodeResults::accept(const keel::common::v1::Metadata& m) {
  const std::string& node = nodeOf(m);
  if (std::find(nodes_.begin(), nodes_.end(), node) == nodes_.end()) nodes_.push_back(node);
  if (m.error().empty()) return true;
  err_ << node << ": " << m.error() << '\n';
  err_.flush();
  const auto code =
      static_cast<StatusCode>(m.code() == 0 ? static_cast<int>(StatusCode::kUnknown) : m.code());
  if (std::find(failed_.begin(), failed_.end(), node) == failed_.end()) failed_.push_back(node);
  if (!firstCode_) firstCode_ = code;
  sameCode_ = sameCode_ && *firstCode_ == code;
  return false;
}

Status NodeResults::finish() const {
  if (failed_.empty()) return Status::ok();
  const std::string message = fmt::format("{} of {} nodes failed", failed_.size(), nodes_.size());
  // Every node failed the same way: that is the command's failure.
  if (failed_.size() == nodes_.size() && sameCode_) return {*firstCode_, message};
  return unavailable(message);
}

}  // namespace keel::keelctl
