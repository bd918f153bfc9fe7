// The node unit for trustd (control planes): its socket directory, which only apid may
// enter, the CA and join tokens in its config file, and its route.
#include "src/node/node.h"

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "keel/apis/builtin.h"
#include "src/node/node_detail.h"
#include "src/trust/apid_identity.h"

namespace keel::machined {

namespace fs = std::filesystem;

Status Node::describeTrustd(const config::MachineConfig& cfg, nlohmann::json& own,
                            std::vector<std::filesystem::path>& /*owned*/) {
  KEEL_ASSIGN_OR_RETURN(const ApidIdentityRequest request, identityRequest(cfg));
  // Only apid may use trustd.sock: its account, or in --root mode the invoking user,
  // under whose uid every service then runs.
  uid_t apidUid = geteuid();
  uid_t trustdUid = geteuid();
  KEEL_RETURN_IF_ERROR(makeDir(paths_.trustdSocketDir(), fs::perms::owner_all | fs::perms::group_read |
                                                             fs::perms::group_exec | fs::perms::set_gid));
  if (geteuid() == 0) {
    KEEL_ASSIGN_OR_RETURN(const auto apidAccount, serviceAccount("apid", true));
    KEEL_ASSIGN_OR_RETURN(const auto trustdAccount, serviceAccount("trustd", true));
    apidUid = apidAccount.first;
    trustdUid = trustdAccount.first;
    // The socket trustd creates there inherits apid's group (set-group-ID directory).
    if (chown(paths_.trustdSocketDir().c_str(), trustdAccount.first, apidGid_) != 0) {
      return internalError("cannot hand " + paths_.trustdSocketDir().string() + " to trustd: " + errnoText(errno));
    }
  }
  own["socket"] = paths_.trustdSocket().string();
  own.update(trustdConfig(cfg, request, {apidUid}));
  // apid routes the CA's API (SecurityService) to it; LocalIssuerService is never routed.
  return writeRoute("trustd", paths_.trustdSocket(), {apis::kSecurityService}, trustdUid);
}

}  // namespace keel::machined
