# Generated code is compiled without the project's warning flags.
#
# keel_proto_library(<target> ROOT <dir> PROTOS <files relative to ROOT> [LINK <libs>]
#                    [DESCRIPTOR_SET <file>])
# compiles .proto files under ROOT (which may import Keel's own from proto/) into a static
# library; DESCRIPTOR_SET also writes the files and their imports as a FileDescriptorSet,
# the form a backend's manifest names for apid's rules and reflection.
function(keel_proto_library target)
  cmake_parse_arguments(P "" "ROOT;DESCRIPTOR_SET" "PROTOS;LINK" ${ARGN})
  set(out ${CMAKE_CURRENT_BINARY_DIR}/gen)
  file(MAKE_DIRECTORY ${out})
  set(includes --proto_path=${P_ROOT})
  if(NOT P_ROOT STREQUAL KEEL_PROTO_ROOT)
    list(APPEND includes --proto_path=${KEEL_PROTO_ROOT})
  endif()
  set(srcs)
  set(sources)
  foreach(proto ${P_PROTOS})
    string(REGEX REPLACE "\\.proto$" "" base ${proto})
    set(outs ${out}/${base}.pb.cc ${out}/${base}.pb.h ${out}/${base}.grpc.pb.cc ${out}/${base}.grpc.pb.h)
    add_custom_command(
      OUTPUT ${outs}
      COMMAND protobuf::protoc ${includes} --cpp_out=${out} --grpc_out=${out}
        --plugin=protoc-gen-grpc=$<TARGET_FILE:gRPC::grpc_cpp_plugin> ${proto}
      DEPENDS ${P_ROOT}/${proto} protobuf::protoc gRPC::grpc_cpp_plugin
      WORKING_DIRECTORY ${P_ROOT}
      COMMENT "protoc ${proto}"
      VERBATIM)
    list(APPEND srcs ${outs})
    list(APPEND sources ${P_ROOT}/${proto})
  endforeach()
  add_library(${target} STATIC ${srcs})
  target_include_directories(${target} SYSTEM PUBLIC ${out})
  target_link_libraries(${target} PUBLIC ${P_LINK} gRPC::grpc++ protobuf::libprotobuf)
  if(P_DESCRIPTOR_SET)
    add_custom_command(
      OUTPUT ${P_DESCRIPTOR_SET}
      COMMAND protobuf::protoc ${includes} --include_imports --descriptor_set_out=${P_DESCRIPTOR_SET} ${P_PROTOS}
      DEPENDS ${sources} protobuf::protoc
      WORKING_DIRECTORY ${P_ROOT}
      COMMENT "descriptor set of ${target}"
      VERBATIM)
    add_custom_target(${target}_descriptor_set ALL DEPENDS ${P_DESCRIPTOR_SET})
  endif()
endfunction()
