# keel_embed_policy(<target> <symbol> <file>)
#
# Compiles <file> (a seccomp profile, see libs/sandbox/README.md) into <target> as
#   extern const std::string_view <symbol>;
# <symbol> may be namespace-qualified ("keel::machined::kSeccompPolicy"); declare it the
# same way where it is used. The file is re-embedded whenever it changes, so the binary
# always carries the reviewed profile that sits beside its sources.
function(keel_embed_policy target symbol file)
  get_filename_component(abs "${file}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
  string(MAKE_C_IDENTIFIER "${symbol}" ident)
  set(out "${CMAKE_CURRENT_BINARY_DIR}/keel_embedded_policy/${target}_${ident}.cpp")
  add_custom_command(
    OUTPUT "${out}"
    COMMAND "${CMAKE_COMMAND}" "-DINPUT=${abs}" "-DOUTPUT=${out}" "-DSYMBOL=${symbol}"
            -P "${KEEL_SANDBOX_CMAKE_DIR}/embed_policy.cmake"
    DEPENDS "${abs}" "${KEEL_SANDBOX_CMAKE_DIR}/embed_policy.cmake"
    COMMENT "Embedding seccomp profile ${file} as ${symbol}"
    VERBATIM)
  target_sources(${target} PRIVATE "${out}")
endfunction()
