#!/usr/bin/env bash
# scripts/gpu_bundle.sh DIR: what scripts/gpu_check.sh needs on a GPU machine besides PyTorch, made
# here from this Debian 12 machine's packages (a GPU machine has python3 with PyTorch 2.x, CMake,
# ninja and nvcc, but no network and none of Debian's -dev packages). DIR gets, under usr/ in
# Debian's own layout:
#   headers: nlohmann-json, CLI11, Catch2, yaml-cpp, gloo, spdlog, fmt, OpenCV core and imgproc,
#     libjpeg, libpng
#   libraries: yaml-cpp, spdlog and fmt (the logger, data/log.h), OpenCV core and imgproc (without imgcodecs, whose package pulls 141
#     libraries: images go through libjpeg-turbo and libpng, data/codec.h), libjpeg, libpng, and
#     every library these load that a bare system lacks (the reference BLAS/LAPACK instead of
#     OpenBLAS: the project's own products use libtorch's)
#   CMake packages: Debian's for yaml-cpp, spdlog, fmt, nlohmann_json and Catch2 (relocatable), one
#     for OpenCV
# and under shared/ the golden tiny fixtures (../shared/golden/tiny) the [cuda] parity test reads.
# At most 60 MiB (checked). Usage: scripts/gpu_bundle.sh DIR   (DIR is replaced)
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
out=$1
shared=${SAM_SHARED_DIR:-$root/../shared}
arch=x86_64-linux-gnu
die() { echo "gpu_bundle: error: $*" >&2; exit 1; }
for p in nlohmann-json3-dev libcli11-dev catch2 libyaml-cpp-dev libgloo-dev libspdlog-dev libfmt-dev libopencv-core-dev \
         libopencv-imgproc-dev libjpeg62-turbo-dev libpng-dev zlib1g-dev libblas3 liblapack3; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    die "package $p is missing (scripts/setup.sh installs what the project needs; apt-get install $p)"
done
[ -f "$shared/golden/tiny/sam.pth" ] || die "no golden fixtures at $shared/golden/tiny (set SAM_SHARED_DIR)"
rm -rf "$out"
mkdir -p "$out/usr/include" "$out/usr/lib/$arch/cmake" "$out/usr/share/cmake" "$out/shared/golden"
inc=$out/usr/include
lib=$out/usr/lib/$arch

# Headers.
cp -a /usr/include/nlohmann /usr/include/CLI /usr/include/catch2 /usr/include/yaml-cpp /usr/include/gloo \
  /usr/include/spdlog /usr/include/fmt "$inc/"
mkdir -p "$inc/opencv4/opencv2"
cp -a /usr/include/opencv4/opencv2/{core,core.hpp,imgproc,imgproc.hpp,opencv_modules.hpp} "$inc/opencv4/opencv2/"
cp -L /usr/include/{jpeglib.h,jmorecfg.h,jerror.h,png.h,pngconf.h,pnglibconf.h,zlib.h,zconf.h} "$inc/"  # png.h and co. are links
mkdir -p "$inc/$arch"
cp -a /usr/include/$arch/jconfig.h "$inc/$arch/" 2>/dev/null || cp -a /usr/include/jconfig.h "$inc/"

# Libraries: the ones linked, then everything they load, less what every Linux system has.
direct=(/usr/lib/$arch/libyaml-cpp.so.0.7 /usr/lib/$arch/libspdlog.so.1.10 /usr/lib/$arch/libopencv_core.so.406 /usr/lib/$arch/libopencv_imgproc.so.406
        /usr/lib/$arch/libjpeg.so.62 /usr/lib/$arch/libpng16.so.16 /usr/lib/$arch/libz.so.1)
system_libs='^(libc|libm|libdl|libpthread|librt|libstdc\+\+|libgcc_s|ld-linux-x86-64)\.so'
declare -A seen=()
copy_lib() {  # $1: a library path; copies it (under its soname) and what it loads
  local path real soname
  path=$1
  real=$(readlink -f "$path")
  soname=$(basename "$path")
  [ -n "${seen[$soname]:-}" ] && return 0
  seen[$soname]=1
  cp -L "$real" "$lib/$soname"
  local dep
  # The reference BLAS/LAPACK stand in for Debian's alternatives (OpenBLAS: 36 MB).
  while read -r dep; do
    [[ "$dep" =~ $system_libs ]] && continue
    case $dep in
      libblas.so.3) copy_lib /usr/lib/$arch/blas/libblas.so.3 ;;
      liblapack.so.3) copy_lib /usr/lib/$arch/lapack/liblapack.so.3 ;;
      *) copy_lib "$(ldconfig -p | awk -v n="$dep" '$1 == n && /x86-64/ {print $NF; exit}')" ;;
    esac
  done < <(readelf -d "$real" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
}
for l in "${direct[@]}"; do copy_lib "$l"; done
# The link-time names (what -l and CMake's find modules look for).
ln -s libyaml-cpp.so.0.7 "$lib/libyaml-cpp.so.0.7.0"
ln -s libyaml-cpp.so.0.7 "$lib/libyaml-cpp.so"
ln -s libspdlog.so.1.10 "$lib/libspdlog.so"
ln -s libspdlog.so.1.10 "$lib/libspdlog.so.1.10.0"  # the names their CMake packages give
ln -s libfmt.so.9 "$lib/libfmt.so"
ln -s libfmt.so.9 "$lib/libfmt.so.9.1.0"
ln -s libjpeg.so.62 "$lib/libjpeg.so"
ln -s libpng16.so.16 "$lib/libpng16.so"
ln -s libpng16.so.16 "$lib/libpng.so"
ln -s libz.so.1 "$lib/libz.so"
ln -s libopencv_core.so.406 "$lib/libopencv_core.so"
ln -s libopencv_imgproc.so.406 "$lib/libopencv_imgproc.so"

# CMake packages. Debian's are relocatable exports (paths relative to their own folder).
cp -a /usr/lib/$arch/cmake/yaml-cpp /usr/lib/$arch/cmake/spdlog /usr/lib/$arch/cmake/fmt "$lib/cmake/"
cp -a /usr/share/cmake/nlohmann_json "$out/usr/share/cmake/"
mkdir -p "$out/usr/lib/cmake"
cp -a /usr/lib/cmake/Catch2 "$out/usr/lib/cmake/"
cp -a /usr/lib/libCatch2WithMain.a "$out/usr/lib/"  # its export names it
mkdir -p "$lib/cmake/opencv4"
cat >"$lib/cmake/opencv4/OpenCVConfig.cmake" <<'EOF'
# OpenCV core and imgproc from Debian 12, as scripts/gpu_bundle.sh packs them (no imgcodecs).
get_filename_component(_sam_cv_prefix "${CMAKE_CURRENT_LIST_DIR}/../../../.." ABSOLUTE)
set(OpenCV_VERSION 4.6.0)
set(OpenCV_INCLUDE_DIRS "${_sam_cv_prefix}/include/opencv4")
set(OpenCV_LIBS "")
foreach(_m core imgproc)
  if(NOT TARGET opencv_${_m})
    add_library(opencv_${_m} SHARED IMPORTED)
    set_target_properties(opencv_${_m} PROPERTIES
      IMPORTED_LOCATION "${_sam_cv_prefix}/lib/x86_64-linux-gnu/libopencv_${_m}.so.406"
      INTERFACE_INCLUDE_DIRECTORIES "${_sam_cv_prefix}/include/opencv4")
  endif()
  set(OpenCV_${_m}_FOUND TRUE)
  list(APPEND OpenCV_LIBS opencv_${_m})
endforeach()
set(OpenCV_imgcodecs_FOUND FALSE)
foreach(_c ${OpenCV_FIND_COMPONENTS})
  if(NOT OpenCV_${_c}_FOUND AND OpenCV_FIND_REQUIRED_${_c})
    set(OpenCV_FOUND FALSE)
    set(OpenCV_NOT_FOUND_MESSAGE "the bundle's OpenCV has no ${_c}")
  endif()
endforeach()
EOF
printf 'set(PACKAGE_VERSION 4.6.0)\nset(PACKAGE_VERSION_COMPATIBLE TRUE)\n' >"$lib/cmake/opencv4/OpenCVConfigVersion.cmake"

# The fixtures of the [cuda] golden parity test.
cp -a "$shared/golden/tiny" "$out/shared/golden/"
echo "Debian 12 packages: $(dpkg-query -W -f='${Package}=${Version} ' nlohmann-json3-dev libcli11-dev catch2 \
  libyaml-cpp-dev libgloo-dev libspdlog-dev libfmt-dev libopencv-core-dev libjpeg62-turbo-dev libpng-dev)" >"$out/SOURCES"

size=$(du -sm "$out" | cut -f1)
echo "gpu_bundle: $out: ${size} MiB ($(find "$out" -type f | wc -l) files)"
[ "$size" -le 60 ] || die "the bundle is ${size} MiB, over the 60 MiB a GPU machine's copy allows"
