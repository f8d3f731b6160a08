#!/bin/sh
# Builds the native libraries into the jar's resources: $1 is the output folder. Two libraries, one
# job each: the userfaultfd fault service (libhetmem_uffd) and the streaming copy (libhetmem_copy).
# Without a C compiler (or off Linux x86-64) the build goes on without them: the userfaultfd mode
# says plainly that it was not built, and copies use memcpy; CI has gcc, and its tests fail if a
# library is missing.
set -eu
out="$1"
src="$(dirname "$0")/hetmem_uffd.c"
if [ "$(uname -s)" != Linux ] || [ "$(uname -m)" != x86_64 ]; then
  echo "hetmem: not Linux x86-64: the userfaultfd fault service and the streaming copy are not built" >&2; exit 0
fi
cc="${CC:-}"
if [ -z "$cc" ]; then
  for c in cc gcc clang; do command -v "$c" >/dev/null 2>&1 && { cc="$c"; break; }; done
fi
if [ -z "$cc" ]; then
  echo "hetmem: no C compiler (install gcc): the userfaultfd fault service and the streaming copy are not built" >&2; exit 0
fi
mkdir -p "$out"
if ! { [ -f "$out/libhetmem_uffd.so" ] && [ "$out/libhetmem_uffd.so" -nt "$src" ] && [ "$out/libhetmem_uffd.so" -nt "$(dirname "$0")/hetmem_uffd_layout.h" ]; }; then
  "$cc" -O2 -Wall -Wextra -Werror -fPIC -shared -pthread -I"$(dirname "$0")" -o "$out/libhetmem_uffd.so" "$src"
fi
copy="$(dirname "$0")/hetmem_copy.c"
if ! { [ -f "$out/libhetmem_copy.so" ] && [ "$out/libhetmem_copy.so" -nt "$copy" ]; }; then
  "$cc" -O2 -Wall -Wextra -Werror -fPIC -shared -o "$out/libhetmem_copy.so" "$copy"
fi
