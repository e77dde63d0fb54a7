# sam_library(<name> <glob> DEPS <libs...>): a static library from the .cpp files matching <glob>
# (globbed, so adding a file needs no CMake edit), reusing the shared libtorch PCH.
function(sam_library name pattern)
  cmake_parse_arguments(ARG "" "" "DEPS" ${ARGN})
  file(GLOB sources CONFIGURE_DEPENDS ${pattern})
  add_library(${name} STATIC ${sources} ${CMAKE_SOURCE_DIR}/cmake/pch.cpp)
  target_link_libraries(${name} PUBLIC sam_pch ${ARG_DEPS})
  sam_use_pch(${name})
endfunction()
