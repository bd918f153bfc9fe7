// The node unit for trustd (control planes): its socket directory, which only apid may
// enter, its config file (libs/contracts: the CA, join tokens, lifetimes) and its route.
#include "src/node/node.h"

#include <unistd.h>


#include "keel/apis/builtin.h"
#include "keel/contracts/trustd_config.h"
#include "src/node/node_detail.h"
#include "src/trust/apid_identity.h"

namespace keel::machined {

namespace fs = std::filesystem;

Result<std::string> Node::trustdConfigFile(const config::MachineConfig& cfg) {
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
  contracts::TrustdConfig trustd;
  trustd.name = "trustd";
  trustd.stateDir = paths_.stateDir("trustd").string();
  trustd.machinedSocket = paths_.socket("machined").string();
  trustd.socket = paths_.trustdSocket();
  trustd.nodeAddress = options_.address;
  KEEL_RETURN_IF_ERROR(trustdConfig(cfg, request, {apidUid}, trustd));
  // apid routes the CA's API (SecurityService) to it; LocalIssuerService is never routed.
  KEEL_RETURN_IF_ERROR(writeRoute("trustd", paths_.trustdSocket(), {apis::kSecurityService}, trustdUid));
  return contracts::serializeTrustdConfig(trustd);
}

}  // namespace keel::machined
