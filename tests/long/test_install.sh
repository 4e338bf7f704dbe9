#!/usr/bin/env bash
# make install into a temporary prefix and into a DESTDIR stage; the three
# libraries through pkg-config (flags, version, a program linked and run
# against each); examples/minimal.c built with the lines documented in its
# header, verbatim, linking only libntkhess; libntkhess.so free of PLplot,
# cJSON and zlib; the man page's sections and options; the installed docs it
# names; make uninstall removes every file.  Prints 'N passed, N failed'.
set -u
cd "$(dirname "$0")/../.."
ROOT=$PWD
BUILD=${BUILD:-build}
p=0; f=0
ok() { if [ "$1" -eq 0 ]; then p=$((p+1)); else f=$((f+1)); echo "FAIL: $2"; fi; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
VERSION=$(sed -n 's/^#define NH_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\)/\2/p' include/ntkhess/core.h | paste -sd.)
# An ASan build (make asan) needs the sanitizer runtime in the programs too.
SAN=""
if grep -q libasan "$BUILD/libntkhess.so" 2>/dev/null; then SAN="-fsanitize=address,undefined"; fi
# The documented build lines of examples/minimal.c, verbatim.
line_installed=$(sed -n 's/^ \*   \(cc minimal\.c .*\)$/\1/p' examples/minimal.c)
line_tree=$(sed -n 's/^ \*   \(cc -Iinclude examples\/minimal\.c .*\)$/\1/p' examples/minimal.c)
[ -n "$line_installed" ] && [ -n "$line_tree" ]; ok $? "examples/minimal.c documents its build lines"
# needed FILE: the shared libraries FILE links directly.
needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'; }
only_core() {  # FILE links libntkhess and none of -io, -plot, PLplot, cJSON, zlib
    local n; n=$(needed "$1")
    echo "$n" | grep -qx 'libntkhess.so.0' && ! echo "$n" | grep -q 'ntkhess-io\|ntkhess-plot\|plplot\|cjson\|libz\.'
}

# --- the build tree: the core library has no PLplot, cJSON or zlib
! ldd "$BUILD/libntkhess.so" | grep -qi 'plplot\|cjson\|libz\.'; ok $? "ldd $BUILD/libntkhess.so shows no PLplot, cJSON, zlib: $(ldd "$BUILD/libntkhess.so" | grep -i 'plplot\|cjson\|libz\.' | tr -s ' \n' ' ')"
ldd "$BUILD/libntkhess-io.so" | grep -q cjson && ! ldd "$BUILD/libntkhess-io.so" | grep -qi plplot; ok $? "libntkhess-io links cJSON, not PLplot"
ldd "$BUILD/libntkhess-plot.so" | grep -qi plplot && ! ldd "$BUILD/libntkhess-plot.so" | grep -q cjson; ok $? "libntkhess-plot links PLplot, not cJSON"
(cd "$tmp" && mkdir tree && cp -r "$ROOT/include" tree/ && mkdir tree/examples && cp "$ROOT/examples/minimal.c" tree/examples/ \
   && ln -s "$ROOT/$BUILD" tree/build && cd tree && eval "$line_tree $SAN") > "$tmp/cc0.log" 2>&1
ok $? "in-tree build line works verbatim: $line_tree: $(cat "$tmp/cc0.log")"
(cd / && "$tmp/tree/minimal") > "$tmp/out0" 2>&1; ok $? "in-tree minimal runs from any folder: $(cat "$tmp/out0")"

# --- make install PREFIX
make -s BUILD="$BUILD" install PREFIX="$tmp/usr" >"$tmp/log" 2>&1; ok $? "make install PREFIX: $(tail -5 "$tmp/log")"
for n in ntkhess ntkhess-io ntkhess-plot; do
  for f_ in lib/lib$n.a lib/lib$n.so lib/lib$n.so.0 lib/pkgconfig/$n.pc; do
    [ -e "$tmp/usr/$f_" ]; ok $? "installed $f_"
  done
done
for f_ in include/ntkhess.h include/ntkhess/core.h include/ntkhess/io.h include/ntkhess/plot.h bin/ntkhess share/man/man1/ntkhess.1 share/doc/ntkhess/conventions.md share/doc/ntkhess/img/fig1_quick.png; do
  [ -e "$tmp/usr/$f_" ]; ok $? "installed $f_"
done
export PKG_CONFIG_PATH="$tmp/usr/lib/pkgconfig"
for n in ntkhess ntkhess-io ntkhess-plot; do
  pkg-config --cflags --libs "$n" >/dev/null; ok $? "pkg-config --cflags --libs $n"
  [ "$(pkg-config --modversion "$n")" = "$VERSION" ]; ok $? "pkg-config --modversion $n = $VERSION (include/ntkhess/core.h)"
  pkg-config --libs --static "$n" | grep -q -- '-lm'; ok $? "pkg-config --static --libs $n has -lm: $(pkg-config --libs --static "$n")"
done
pkg-config --libs ntkhess-io | grep -q -- '-lntkhess-io.*-lntkhess\b\|-lntkhess-io -lntkhess'; ok $? "ntkhess-io pulls in ntkhess: $(pkg-config --libs ntkhess-io)"
! pkg-config --libs ntkhess | grep -q 'cjson\|plplot\|-lz\b'; ok $? "pkg-config --libs ntkhess names no cJSON, PLplot, zlib"

# examples/minimal.c with its documented line, verbatim, from a copy of examples/
mkdir -p "$tmp/ex" && cp examples/minimal.c "$tmp/ex/"
(cd "$tmp/ex" && eval "$line_installed $SAN") > "$tmp/cc.log" 2>&1; ok $? "documented line works verbatim: $line_installed: $(cat "$tmp/cc.log")"
LD_LIBRARY_PATH="$tmp/usr/lib" "$tmp/ex/minimal" >"$tmp/out" 2>&1; ok $? "minimal runs: $(cat "$tmp/out")"
grep -q "top eigenvalue of H" "$tmp/out"; ok $? "minimal prints its results"
only_core "$tmp/ex/minimal"; ok $? "minimal links only libntkhess: $(needed "$tmp/ex/minimal" | tr '\n' ' ')"
cc -std=c11 $SAN examples/minimal.c $(pkg-config --cflags --static --libs ntkhess | sed "s|-lntkhess\b|$tmp/usr/lib/libntkhess.a|") -lm -o "$tmp/minimal_static" 2>"$tmp/cc2.log"; ok $? "static link (pkg-config --static): $(cat "$tmp/cc2.log")"
! needed "$tmp/minimal_static" | grep -q ntkhess && "$tmp/minimal_static" >/dev/null 2>&1; ok $? "static binary runs without libntkhess.so"

# libntkhess-io: write and read back a .npy; libntkhess-plot: the driver check.
cat > "$tmp/io.c" <<'EOF'
#include <ntkhess.h>
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    (void)argc;
    const double a[6] = {1, 2, 3, 4, 5, 6.5};
    size_t shape[2] = {2, 3}, ndim, got[NH_NPY_MAXDIM];
    double *b;
    if (nh_npy_write(argv[1], a, 2, shape) != NH_OK || nh_npy_read(argv[1], &b, &ndim, got) != NH_OK) {
        fprintf(stderr, "%s\n", nh_last_error()); return 1;
    }
    int ok = ndim == 2 && got[0] == 2 && got[1] == 3 && b[5] == 6.5;
    free(b);
    printf("%s\n", ok ? "npy round trip ok" : "npy round trip wrong");
    return !ok;
}
EOF
cc -std=c11 $SAN "$tmp/io.c" $(pkg-config --cflags --libs ntkhess-io) -o "$tmp/io" 2>"$tmp/cc3.log"; ok $? "a program against ntkhess-io builds: $(cat "$tmp/cc3.log")"
LD_LIBRARY_PATH="$tmp/usr/lib" "$tmp/io" "$tmp/a.npy" >/dev/null 2>&1; ok $? "it writes and reads back a .npy"
cat > "$tmp/plot.c" <<'EOF'
#include <ntkhess.h>
#include <stdio.h>
int main(void) {
    nh_status s = nh_plot_available();
    if (s != NH_OK) fprintf(stderr, "%s\n", nh_last_error());
    return s != NH_OK;
}
EOF
cc -std=c11 $SAN "$tmp/plot.c" $(pkg-config --cflags --libs ntkhess-plot) -o "$tmp/plot" 2>"$tmp/cc4.log"; ok $? "a program against ntkhess-plot builds: $(cat "$tmp/cc4.log")"
LD_LIBRARY_PATH="$tmp/usr/lib" "$tmp/plot" >"$tmp/out4" 2>&1; ok $? "it finds PLplot's cairo drivers: $(cat "$tmp/out4")"

# --- the man page: sections, every option of every command, installed docs only
MAN="$tmp/usr/share/man/man1/ntkhess.1"
man -l "$MAN" >/dev/null 2>&1 || groff -man -Tascii "$MAN" >/dev/null 2>&1; ok $? "man page renders"
for s in NAME SYNOPSIS DESCRIPTION COMMANDS EXAMPLES ENVIRONMENT FILES "EXIT STATUS" "SEE ALSO"; do
  grep -q "^\.SH \"\?$s\"\?$" "$MAN"; ok $? "man page has $s"
done
for v in NTKHESS_DATA OMP_NUM_THREADS OPENBLAS_NUM_THREADS NTKHESS_LIB; do
  grep -q "^\.B $v" "$MAN"; ok $? "man page ENVIRONMENT documents $v"
done
for c in $("$BUILD/ntkhess" --help | awk '/^Commands:/{x=1;next} x&&/^  [a-z]/{print $1}'); do
  for o in $("$BUILD/ntkhess" $c --help | grep -oE '^  --[a-z0-9-]+' | tr -d ' '); do
    grep -q -- "${o//-/\\\\-}\|$o" "$MAN"; ok $? "man page lists $c $o"
  done
done
docs=$(grep -oE "$tmp/usr/share/doc/ntkhess/[A-Za-z_./]*" "$MAN" | sed 's/\.$//' | sort -u)
[ -n "$docs" ]; ok $? "man page names the installed docs folder"
for d in $docs; do [ -e "$d" ]; ok $? "man page points to an installed file: $d"; done
! grep -q 'docs/[a-z_]*\.md' "$MAN"; ok $? "man page names no source-tree docs/ path"

# --- DESTDIR staging, and pkg-config on the staged copy with the sysroot
make -s BUILD="$BUILD" install PREFIX=/usr DESTDIR="$tmp/stage" >/dev/null 2>&1; ok $? "make install DESTDIR"
[ -e "$tmp/stage/usr/bin/ntkhess" ] && [ -e "$tmp/stage/usr/share/doc/ntkhess/conventions.md" ]; ok $? "DESTDIR staging"
grep -q '^prefix=/usr$' "$tmp/stage/usr/lib/pkgconfig/ntkhess.pc"; ok $? "staged ntkhess.pc names the final prefix /usr"
mkdir -p "$tmp/ex2" && cp examples/minimal.c "$tmp/ex2/"
(cd "$tmp/ex2" && export PKG_CONFIG_PATH="$tmp/stage/usr/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$tmp/stage" && eval "$line_installed $SAN") > "$tmp/cc5.log" 2>&1
ok $? "documented line against the DESTDIR stage (PKG_CONFIG_SYSROOT_DIR): $(cat "$tmp/cc5.log")"
LD_LIBRARY_PATH="$tmp/stage/usr/lib" "$tmp/ex2/minimal" >/dev/null 2>&1; ok $? "staged minimal runs"
only_core "$tmp/ex2/minimal"; ok $? "staged minimal links only libntkhess"

# --- make uninstall
make -s BUILD="$BUILD" uninstall PREFIX="$tmp/usr" >/dev/null 2>&1; ok $? "make uninstall"
left=$(find "$tmp/usr" -type f -o -type l | wc -l); [ "$left" -eq 0 ]; ok $? "uninstall removed every file ($left left: $(find "$tmp/usr" -type f -o -type l | head -3 | tr '\n' ' '))"
echo "$p passed, $f failed"
[ "$f" -eq 0 ]
