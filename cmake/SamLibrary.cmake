# sam_library(<name> <glob> DEPS <libs...>): a static library from the .cpp files matching <glob>
# (globbed, so adding a file needs no CMake edit), reusing the shared libtorch PCH.
function(sam_library name pattern)
  cmake_parse_arguments(ARG "" "" "DEPS" ${ARGN})
  file(GLOB sources CONFIGURE_DEPENDS ${pattern})
  add_library(${name} STATIC ${sources} ${CMAKE_SOURCE_DIR}/cmake/pch.cpp)
  target_link_libraries(${name} PUBLIC sam_pch ${ARG_DEPS})
  sam_use_pch(${name})
endfunction()

# sam_fast_math_sources(<files...>): sources whose loops call sam/fast_math.h. They compile with
# -fno-trapping-math, without which GCC leaves those loops scalar, and so without the shared PCH
# (built with the default flags).
function(sam_fast_math_sources)
  set_source_files_properties(${ARGN} PROPERTIES SKIP_PRECOMPILE_HEADERS ON COMPILE_OPTIONS -fno-trapping-math)
endfunction()
