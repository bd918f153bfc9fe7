# Script mode helper of keel_embed_policy(): writes a .cpp that defines SYMBOL as a
# std::string_view over the bytes of INPUT. Bytes, not a raw string literal, so that no
# content of the file can end the literal early.
file(READ "${INPUT}" hex HEX)
string(LENGTH "${hex}" hexLength)
math(EXPR size "${hexLength} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "'\\\\x\\1'," bytes "${hex}")
string(REGEX REPLACE "(([^,]*,){16})" "\\1\n    " bytes "${bytes}")

string(FIND "${SYMBOL}" "::" sep REVERSE)
if(sep EQUAL -1)
  set(ns "")
  set(name "${SYMBOL}")
else()
  string(SUBSTRING "${SYMBOL}" 0 ${sep} ns)
  math(EXPR nameStart "${sep} + 2")
  string(SUBSTRING "${SYMBOL}" ${nameStart} -1 name)
endif()

set(body "// Generated from ${INPUT} by keel_embed_policy(); edit that file instead.
#include <string_view>

namespace {
const char kBytes[] = {
    ${bytes}'\\0'};
}  // namespace
")
if(ns STREQUAL "")
  string(APPEND body "extern const std::string_view ${name};\nconst std::string_view ${name}{kBytes, ${size}};\n")
else()
  string(APPEND body "namespace ${ns} {\nextern const std::string_view ${name};\nconst std::string_view ${name}{kBytes, ${size}};\n}  // namespace ${ns}\n")
endif()
file(WRITE "${OUTPUT}" "${body}")
