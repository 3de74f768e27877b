# Writes OUTPUT, a C++ header that holds the bytes of INPUT as `constexpr std::string_view NAME`
# in one raw string literal, so that a program can serve a page without files next to it:
#
#   cmake -DINPUT=index.html -DOUTPUT=chat_page.hpp -DNAME=chat_page_html -P embed_page.cmake
cmake_minimum_required(VERSION 3.20)

foreach(variable INPUT OUTPUT NAME)
  if(NOT DEFINED ${variable})
    message(FATAL_ERROR "embed_page.cmake: -D${variable}=... is required")
  endif()
endforeach()

file(READ "${INPUT}" content)

# A raw string literal ends at the first )DELIMITER" in it: take a delimiter that INPUT does not
# contain, so that no edit of the page can end the literal early.
set(attempt 0)
set(delimiter "page${attempt}")
string(FIND "${content}" ")${delimiter}\"" found)
while(NOT found EQUAL -1)
  math(EXPR attempt "${attempt} + 1")
  set(delimiter "page${attempt}")
  string(FIND "${content}" ")${delimiter}\"" found)
endwhile()

get_filename_component(input_name "${INPUT}" NAME)
file(WRITE "${OUTPUT}"
  "// Generated from ${input_name} by embed_page.cmake at build time: edit ${input_name}.\n"
  "#pragma once\n"
  "\n"
  "#include <string_view>\n"
  "\n"
  "inline constexpr std::string_view ${NAME} = R\"${delimiter}(${content})${delimiter}\";\n")
