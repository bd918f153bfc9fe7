#include "gen_commands.h"

#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "keel/config/duration.h"
#include "keel/config/endpoint.h"
#include "keel/config/file_io.h"
#include "keel/config/generate.h"
#include "keel/config/secrets.h"
#include "keel/image/image_file.h"
#include "keel/pki/pki.h"

namespace keel::keelctl {

Status genSecrets(const GenSecretsOptions& options, CommandEnv& env) {
  KEEL_ASSIGN_OR_RETURN(auto bundle, config::generateSecrets({}, env.clock, env.random));
  KEEL_RETURN_IF_ERROR(withHint(
      config::writeSecretsFile(options.output, bundle, options.force ? config::Overwrite::kYes : config::Overwrite::kNo),
      ""));
  env.out << fmt::format("wrote {} (mode 0600): keep it safe, it holds every CA key of the cluster\n",
                         options.output.string());
  return Status::ok();
}

Status genConfig(const GenConfigOptions& options, CommandEnv& env) {
  KEEL_RETURN_IF_ERROR(config::validateClusterName(options.clusterName));
  KEEL_ASSIGN_OR_RETURN(const config::Endpoint endpoint, config::parseEndpoint(options.endpoint));
  auto ttl = config::parseDuration(options.crtTtl, pki::kMaxValidity);
  if (!ttl.ok()) return ttl.status().withContext("--crt-ttl");

  const std::filesystem::path cpPath = options.outputDir / "controlplane.json";
  const std::filesystem::path workerPath = options.outputDir / "worker.json";
  const std::filesystem::path clientPath = options.outputDir / "keelconfig";
  const auto overwrite = options.force ? config::Overwrite::kYes : config::Overwrite::kNo;
  if (!options.force) {
    // All or nothing: a half-written set would mix configs of two different clusters.
    for (const auto& p : {cpPath, workerPath, clientPath}) {
      std::error_code ec;
      if (std::filesystem::exists(std::filesystem::symlink_status(p, ec))) {
        return alreadyExists(fmt::format("{} already exists: refusing to overwrite it (pass --force to replace it)",
                                         p.string()));
      }
    }
  }

  std::optional<config::SecretsBundle> secrets;
  if (options.withSecrets) {
    auto loaded = config::readSecretsFile(*options.withSecrets);
    if (!loaded.ok()) return withHint(loaded.status(), kMissingSecretsHint);
    secrets = std::move(loaded).value();
  } else {
    KEEL_ASSIGN_OR_RETURN(auto generated, config::generateSecrets({}, env.clock, env.random));
    secrets = std::move(generated);
  }

  KEEL_ASSIGN_OR_RETURN(auto machineConfigs,
                        config::generateMachineConfigs(*secrets, {.clusterName = options.clusterName,
                                                                  .endpoint = endpoint,
                                                                  .certSans = options.additionalSans}));
  KEEL_ASSIGN_OR_RETURN(auto context, config::generateClientContext(
                                          *secrets, {.commonName = "admin", .roles = {"os:admin"}, .ttl = *ttl},
                                          env.clock));
  auto applyPatches = [](config::MachineConfig& c, const std::vector<std::filesystem::path>& files) -> Status {
    for (const auto& file : files) {
      std::ifstream in(file, std::ios::binary);
      if (!in) return notFound(fmt::format("config patch {}: cannot be read", file.string()));
      std::ostringstream text;
      text << in.rdbuf();
      auto patched = config::patchMachineConfig(c, text.str());
      if (!patched.ok()) return patched.status().withContext("config patch " + file.string());
      c = std::move(patched).value();
    }
    return Status::ok();
  };
  KEEL_RETURN_IF_ERROR(applyPatches(machineConfigs.controlPlane, options.configPatches));
  KEEL_RETURN_IF_ERROR(applyPatches(machineConfigs.worker, options.configPatches));
  KEEL_RETURN_IF_ERROR(applyPatches(machineConfigs.controlPlane, options.configPatchesControlPlane));
  KEEL_RETURN_IF_ERROR(applyPatches(machineConfigs.worker, options.configPatchesWorker));
  if (options.imageKey) {
    std::ifstream in(*options.imageKey, std::ios::binary);
    if (!in) return notFound(fmt::format("--image-key {}: cannot be read", options.imageKey->string()));
    std::ostringstream pem;
    pem << in.rdbuf();
    if (const Status s = pki::checkDigestSigningKey(pem.str()); !s.isOk()) {
      return s.withContext("--image-key " + options.imageKey->string());
    }
    machineConfigs.controlPlane.imageSigningKey = pem.str();
    machineConfigs.worker.imageSigningKey = pem.str();
  }
  context.endpoints = {endpoint.hostPort()};
  context.nodes = {endpoint.host};
  config::ClientConfig client{.context = options.clusterName, .contexts = {{options.clusterName, context}}};

  std::error_code ec;
  std::filesystem::create_directories(options.outputDir, ec);
  if (ec) return internalError(fmt::format("cannot create {}: {}", options.outputDir.string(), ec.message()));
  KEEL_RETURN_IF_ERROR(withHint(config::writeMachineConfigFile(cpPath, machineConfigs.controlPlane, overwrite), ""));
  KEEL_RETURN_IF_ERROR(withHint(config::writeMachineConfigFile(workerPath, machineConfigs.worker, overwrite), ""));
  KEEL_RETURN_IF_ERROR(withHint(config::writeClientConfigFile(clientPath, client, overwrite), ""));

  if (!options.withSecrets) {
    env.out << "generated new cluster secrets (not saved separately; use 'keelctl gen secrets' and "
               "--with-secrets to keep a bundle)\n";
  }
  env.out << fmt::format("wrote {} (mode 0600): control-plane machine config, holds the cluster's CA keys\n",
                         cpPath.string());
  env.out << fmt::format("wrote {} (mode 0600): worker machine config, holds the join token\n", workerPath.string());
  env.out << fmt::format("wrote {} (mode 0600): client config, context '{}', endpoint {}, os:admin certificate "
                         "valid until {}\n",
                         clientPath.string(), options.clusterName, endpoint.hostPort(),
                         formatTime(env.clock.now() + *ttl));
  return Status::ok();
}

namespace {

constexpr const char* kImageKeyFile = "image-signing.key";
constexpr const char* kImagePubFile = "image-signing.pub";

Result<std::string> readWhole(const std::filesystem::path& path, std::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return notFound(fmt::format("{} {}: cannot be read", what, path.string()));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

std::string toHex(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const unsigned char c : bytes) out += fmt::format("{:02x}", c);
  return out;
}

Status genImageKey(const GenImageKeyOptions& options, CommandEnv& env) {
  const auto keyPath = options.outputDir / kImageKeyFile;
  const auto pubPath = options.outputDir / kImagePubFile;
  const auto overwrite = options.force ? config::Overwrite::kYes : config::Overwrite::kNo;
  if (!options.force) {
    for (const auto& p : {keyPath, pubPath}) {
      std::error_code ec;
      if (std::filesystem::exists(p, ec)) {
        return alreadyExists(fmt::format("{} exists; pass --force to replace it", p.string()));
      }
    }
  }
  KEEL_ASSIGN_OR_RETURN(const auto key, pki::PrivateKey::generate(pki::KeyType::kEcdsaP256));
  std::error_code ec;
  std::filesystem::create_directories(options.outputDir, ec);
  if (ec) return internalError(fmt::format("cannot create {}: {}", options.outputDir.string(), ec.message()));
  KEEL_RETURN_IF_ERROR(config::writePrivateFile(keyPath, key.toPem(), overwrite));
  KEEL_RETURN_IF_ERROR(config::writePrivateFile(pubPath, key.publicKeyPem(), overwrite));
  std::filesystem::permissions(pubPath, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write |
                                            std::filesystem::perms::group_read | std::filesystem::perms::others_read,
                               ec);
  env.out << fmt::format(
      "wrote {} (mode 0600): signs node images, keep it offline\n"
      "wrote {}: the public key; 'keelctl gen config --image-key {}' puts it in machine.upgrade.publicKey\n",
      keyPath.string(), pubPath.string(), pubPath.string());
  return Status::ok();
}

Status signImage(const SignImageOptions& options, CommandEnv& env) {
  KEEL_ASSIGN_OR_RETURN(const auto keyPem, readWhole(options.key, "--key"));
  KEEL_ASSIGN_OR_RETURN(const auto key, pki::PrivateKey::fromPem(keyPem));
  // The manifest is signed; its hashes cover the parts. A file that is not a whole,
  // well-formed image is refused here rather than signed.
  KEEL_ASSIGN_OR_RETURN(const auto head, image::readImageHead(options.image));
  const std::string digest = image::sha256(head.manifestBytes);
  KEEL_ASSIGN_OR_RETURN(const auto signature, pki::signDigest(key, digest));
  const auto output = options.output.value_or(std::filesystem::path(options.image.string() + ".sig"));
  KEEL_RETURN_IF_ERROR(config::writePrivateFile(output, signature,
                                                options.force ? config::Overwrite::kYes : config::Overwrite::kNo));
  std::error_code ec;
  std::filesystem::permissions(output, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write |
                                           std::filesystem::perms::group_read | std::filesystem::perms::others_read,
                               ec);
  env.out << fmt::format("wrote {}: the signature of {} (image {}, build {}; manifest sha256 {})\n",
                         output.string(), options.image.string(), head.manifest.version.toString(),
                         head.manifest.buildId, toHex(digest));
  return Status::ok();
}

}  // namespace keel::keelctl
