# cmake -DLIBRARY=<libdlu_trt_plugins.so> -DNM=<nm> -DREADELF=<readelf> -P check_exports.cmake
# The library exports exactly its four entry points and does not depend on libnvinfer.
set(expected "dlu_trt_plugins_version;getCreators;initLibDluTrtPlugins;setLoggerFinder")

execute_process(COMMAND "${NM}" -D --defined-only "${LIBRARY}"
  OUTPUT_VARIABLE nm_output RESULT_VARIABLE nm_status)
if(NOT nm_status EQUAL 0)
  message(FATAL_ERROR "nm failed on ${LIBRARY}")
endif()
string(REPLACE "\n" ";" lines "${nm_output}")
set(exported "")
foreach(line IN LISTS lines)
  # "<address> <type> <name>"; version-node entries (type A) are not symbols of the code.
  if(line MATCHES "^[0-9a-fA-F]+ ([A-Za-z]) (.+)$" AND NOT CMAKE_MATCH_1 STREQUAL "A")
    list(APPEND exported "${CMAKE_MATCH_2}")
  endif()
endforeach()
list(SORT exported)
if(NOT exported STREQUAL expected)
  message(FATAL_ERROR "exported symbols: ${exported}; expected exactly: ${expected}")
endif()

execute_process(COMMAND "${READELF}" -d "${LIBRARY}" OUTPUT_VARIABLE dynamic RESULT_VARIABLE readelf_status)
if(NOT readelf_status EQUAL 0)
  message(FATAL_ERROR "readelf failed on ${LIBRARY}")
endif()
string(REGEX MATCHALL "Shared library: \\[[^]]+\\]" needed "${dynamic}")
if(needed MATCHES "libnvinfer")
  message(FATAL_ERROR "${LIBRARY} depends on TensorRT's libraries: ${needed}")
endif()
message(STATUS "exports: ${exported}; needs: ${needed}")
