/* cli_shim.h -- force-included (clang -include) into the CLI sources that
 * the checkpoint and fig1 fuzzers compile (src/cli/ckpt.c, args.c, cmd_fig.c).
 *
 * The CLI reports errors by printing to stderr and calling exit().  Under the
 * fuzzer an exit would end the whole run, so:
 *   exit(code) -> nh_fuzz_exit(code): longjmp back into the harness while it
 *                 has armed a jump (NHF_CLI_CALL in fuzz_common.h), a real
 *                 exit otherwise;
 *   stderr     -> /dev/null, unless NH_FUZZ_VERBOSE is set (the "ntkhess:
 *                 error: ..." lines would otherwise flood the fuzzer's log).
 * Nothing in src/ is changed; the library sources are compiled without it. */
#ifndef NH_FUZZ_CLI_SHIM_H
#define NH_FUZZ_CLI_SHIM_H
#include <stdio.h>
#include <stdlib.h>

_Noreturn void nh_fuzz_exit(int code);
FILE *nh_fuzz_stderr(void);

#define exit(code) nh_fuzz_exit(code)
#undef stderr
#define stderr (nh_fuzz_stderr())
#endif
