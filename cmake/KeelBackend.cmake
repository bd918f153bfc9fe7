# keel_backend(<name> SOURCES <files> PROTO_ROOT <dir> PROTOS <files relative to it>
#              POLICY <seccomp profile> MANIFEST <manifest template> [VERSION <v>] [LIBS <libs>])
#
# Builds a backend daemon on the SDK (libs/backend) and stages it the way machined finds
# it, in ${KEEL_LIBEXEC_DIR}: the binary as <libexec>/<name>, and in <libexec>/backends/
# its manifest (<name>.json, with @KEEL_VERSION@ replaced by VERSION, default the
# project's), its descriptor set (<name>.pb: apid's rules and reflection) and its seccomp
# profile (<name>.policy: what machined applies). The profile is also embedded in the
# binary as keel::backend::kDaemonPolicy, which the daemon applies to itself.
function(keel_backend name)
  cmake_parse_arguments(B "" "PROTO_ROOT;POLICY;MANIFEST;VERSION" "SOURCES;PROTOS;LIBS" ${ARGN})
  if(NOT B_VERSION)
    set(B_VERSION ${PROJECT_VERSION})
  endif()
  set(stage ${KEEL_LIBEXEC_DIR}/backends)
  file(MAKE_DIRECTORY ${stage})
  keel_proto_library(${name}_proto ROOT ${B_PROTO_ROOT} PROTOS ${B_PROTOS} LINK keel_proto
    DESCRIPTOR_SET ${stage}/${name}.pb)
  add_executable(${name} ${B_SOURCES})
  target_link_libraries(${name} PRIVATE keel_backend "$<LINK_LIBRARY:WHOLE_ARCHIVE,keel_backend_reflection>"
    ${name}_proto ${B_LIBS})
  add_dependencies(${name} ${name}_proto_descriptor_set)
  get_filename_component(policy "${B_POLICY}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
  get_filename_component(manifest "${B_MANIFEST}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
  keel_embed_policy(${name} keel::backend::kDaemonPolicy ${policy})
  set(KEEL_VERSION ${B_VERSION})
  configure_file(${manifest} ${stage}/${name}.json @ONLY)
  configure_file(${policy} ${stage}/${name}.policy COPYONLY)
  add_custom_command(TARGET ${name} POST_BUILD
    COMMAND ${CMAKE_COMMAND} -E copy $<TARGET_FILE:${name}> ${KEEL_LIBEXEC_DIR}/${name}
    VERBATIM)
endfunction()
