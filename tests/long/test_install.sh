#!/usr/bin/env bash
# make install into a temporary prefix (and DESTDIR), build examples/minimal.c
# against the installed copy with pkg-config, run it, check the man page, then
# make uninstall removes every installed file.  Prints 'N passed, N failed'.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
p=0; f=0
ok() { if [ "$1" -eq 0 ]; then p=$((p+1)); else f=$((f+1)); echo "FAIL: $2"; fi; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# An ASan build (make asan) needs the sanitizer runtime in the programs too.
SAN=""
if grep -q libasan "$BUILD/libntkhess.so" 2>/dev/null; then SAN="-fsanitize=address,undefined"; fi
make -s BUILD="$BUILD" install PREFIX="$tmp/usr" >"$tmp/log" 2>&1; ok $? "make install PREFIX"
for f_ in lib/libntkhess.a lib/libntkhess.so lib/libntkhess.so.0 include/ntkhess.h lib/pkgconfig/ntkhess.pc bin/ntkhess share/man/man1/ntkhess.1; do
  [ -e "$tmp/usr/$f_" ]; ok $? "installed $f_"
done
export PKG_CONFIG_PATH="$tmp/usr/lib/pkgconfig"
flags=$(pkg-config --cflags --libs ntkhess); ok $? "pkg-config --cflags --libs ntkhess"
cc -std=c11 -Wall -Wextra -Werror $SAN examples/minimal.c $flags -lm -o "$tmp/minimal" 2>"$tmp/cc.log"; ok $? "examples/minimal.c builds against the installed copy: $(cat "$tmp/cc.log")"
LD_LIBRARY_PATH="$tmp/usr/lib" "$tmp/minimal" >"$tmp/out" 2>&1; ok $? "minimal runs: $(cat "$tmp/out")"
grep -q "top eigenvalue of H" "$tmp/out"; ok $? "minimal prints its results"
cc -std=c11 $SAN examples/minimal.c -I"$tmp/usr/include" "$tmp/usr/lib/libntkhess.a" $(pkg-config --libs-only-l --static ntkhess | sed 's/-lntkhess//') -lm -o "$tmp/minimal_static" 2>"$tmp/cc2.log"; ok $? "static link: $(cat "$tmp/cc2.log")"
"$tmp/minimal_static" >/dev/null 2>&1; ok $? "static binary runs"
man -l "$tmp/usr/share/man/man1/ntkhess.1" >/dev/null 2>&1 || groff -man -Tascii "$tmp/usr/share/man/man1/ntkhess.1" >/dev/null 2>&1; ok $? "man page renders"
for c in $("$BUILD/ntkhess" --help | awk '/^Commands:/{x=1;next} x&&/^  [a-z]/{print $1}'); do
  for o in $("$BUILD/ntkhess" $c --help | grep -oE '^  --[a-z0-9-]+' | tr -d ' '); do
    grep -q -- "${o//-/\\\\-}\|$o" "$tmp/usr/share/man/man1/ntkhess.1"; ok $? "man page lists $c $o"
  done
done
make -s BUILD="$BUILD" install PREFIX=/usr DESTDIR="$tmp/stage" >/dev/null 2>&1; ok $? "make install DESTDIR"
[ -e "$tmp/stage/usr/bin/ntkhess" ]; ok $? "DESTDIR staging"
make -s BUILD="$BUILD" uninstall PREFIX="$tmp/usr" >/dev/null 2>&1; ok $? "make uninstall"
left=$(find "$tmp/usr" -type f | wc -l); [ "$left" -eq 0 ]; ok $? "uninstall removed every file ($left left)"
echo "$p passed, $f failed"
[ "$f" -eq 0 ]
