#include "src/node/accounts.h"

#include <set>

#include <nlohmann/json.hpp>

#include "keel/config/file_io.h"

namespace keel::machined {

namespace {

Result<nlohmann::json> parseAccounts(std::string_view text) {
  auto doc = nlohmann::json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return invalidArgument("expected a JSON object of name: uid");
  for (const auto& [name, uid] : doc.items()) {
    if (!uid.is_number_unsigned() || uid.get<uint64_t>() < DynamicAccounts::kBase ||
        uid.get<uint64_t>() >= uint64_t{DynamicAccounts::kBase} + DynamicAccounts::kCount) {
      return invalidArgument("expected the uid of '" + name + "' in machined's range, found " + uid.dump());
    }
  }
  return doc;
}

}  // namespace

Result<std::pair<uid_t, gid_t>> DynamicAccounts::accountFor(const std::string& name) {
  nlohmann::json accounts = nlohmann::json::object();
  if (std::filesystem::exists(file_)) {
    KEEL_ASSIGN_OR_RETURN(accounts, config::readPrivateDocument(file_, "machined's accounts", parseAccounts));
  }
  if (accounts.contains(name)) {
    const auto uid = accounts[name].get<uid_t>();
    return std::make_pair(uid, static_cast<gid_t>(uid));
  }
  std::set<uid_t> taken;
  for (const auto& [other, uid] : accounts.items()) taken.insert(uid.get<uid_t>());
  for (uid_t uid = kBase; uid < kBase + kCount; ++uid) {
    if (taken.contains(uid)) continue;
    accounts[name] = uid;
    KEEL_RETURN_IF_ERROR(config::writePrivateFile(file_, accounts.dump(2) + "\n", config::Overwrite::kYes));
    return std::make_pair(uid, static_cast<gid_t>(uid));
  }
  return Status(StatusCode::kResourceExhausted,
                "no uid left in machined's range for the account of " + name + " (" + std::to_string(kCount) +
                    " in use)");
}

}  // namespace keel::machined
