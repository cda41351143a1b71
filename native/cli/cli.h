/* SPDX-License-Identifier: MIT
 * The lodestone CLI's commands written in C (`up`, `dev token`) and the
 * helpers they share: where the program and Lodestone's files are. Private
 * to the CLI; the other commands are Lua (lua/lodestone/cli/).
 */
#ifndef LS_CLI_H
#define LS_CLI_H

#include <stddef.h>

/* `lodestone up ...` (argv[1] is "up"); returns the exit status. */
int cli_up_main(int argc, char **argv);

/* `lodestone dev token ...` (argv[1] is "dev"); returns the exit status. */
int cli_dev_main(int argc, char **argv);

/* The directory holding this program (from /proc/self/exe) into buf.
 * Returns 0, or -1 with a message on stderr. */
int cli_exe_dir(char *buf, size_t n);

/* The directory Lodestone's shared files come from (conf/, policies/):
 * $LODESTONE_SHARE_DIR, else the parent of the Lua directory (the source
 * tree in a build, PREFIX/share/lodestone once installed). Into buf;
 * returns 0, or -1 when it does not fit. */
int cli_share_dir(char *buf, size_t n);

/* Reads the option at argv[*i] of `lodestone CMD` ("--name VALUE" or
 * "--name=VALUE"), whose known names (without "--") are names[0..], NULL
 * last. Returns the index of its name and points *value at its value
 * (borrowed from argv), leaving *i on the last argument it used. Returns -1
 * after printing "lodestone CMD: ..." on stderr when the argument is not an
 * option, is not one of names, or has no value (also when the next argument,
 * its value, is --help, -h or another of names: a forgotten value). */
int cli_option(int argc, char **argv, int *i, const char *cmd, const char *const *names,
               const char **value);

/* snprintf into buf that reports truncation: 0 when it fit, else -1. */
int cli_fmt(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
