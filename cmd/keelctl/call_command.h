// keelctl call: calls any method a node routes, with a JSON request, printing the replies
// as JSON. The schema comes from the node's gRPC reflection (through apid), so an API
// added by an extension needs no change to keelctl.
#pragma once

#include <chrono>
#include <string>

#include "keel/common/status.h"

#include "node_calls.h"

namespace keel::keelctl {

struct CallArgs {
  // package.Service/Method, /package.Service/Method, package.Service.Method, or a
  // service's full name (list its methods); empty: list the services.
  std::string method;
  // The request as JSON; "-" reads it from env.in, "@path" from a file.
  std::string request = "{}";
  bool compact = false;  // one reply per line instead of indented JSON
  // The call's deadline; zero means none. Unset: 30 s for a unary method, none for a
  // server stream (which ends at the server's will or with Ctrl-C).
  std::optional<std::chrono::seconds> timeout;
};

// Runs `keelctl call` against env.client. The schema is asked of the first target node
// (-n), else of the node behind the endpoint; the call itself goes to every target node.
// Replies are printed to env.out; a fan-out entry or stream message whose metadata holds
// an error is also reported on env.err as "<node>: <error>" and fails the command.
// Errors name what to do: an unknown service points to 'keelctl call' without a method,
// an unknown method lists the service's methods.
Status cmdCall(MachineCommandEnv& env, const CallArgs& args);

}  // namespace keel::keelctl
