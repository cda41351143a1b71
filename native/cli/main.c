/* SPDX-License-Identifier: MIT
 * lodestone: the command line. Policy commands run here, offline, through
 * the same C engine lighttpd uses; workflow commands talk to lodestoned over
 * its HTTP API (lua/lodestone/cli/workflow.lua). */
#include "ls_config.h"

#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "lls_embed.h"
#include "lodestone/lodestone.h"

static const char usage[] =
    "usage: lodestone COMMAND [ARGS]\n"
    "\n"
    "Policies (offline, same engine as lighttpd):\n"
    "  policy check FILE --request JSON [--now EPOCH]   print the decision as JSON\n"
    "  policy test FILE CASES.json                      run a table of cases; non-zero on failure\n"
    "  policy hash-key KEYFILE --subject NAME [--roles a,b] [--scopes x,y]\n"
    "                                                   add a new API key; prints the key once\n"
    "  policy hash-password PWFILE USER                 add or replace a Basic user (password on "
    "stdin)\n"
    "\n"
    "Workflows (talk to lodestoned; lodestone COMMAND --help for options):\n"
    "  start TYPE [--id ID] [--input JSON|@FILE|@-] [--wait] [--timeout SECONDS]\n"
    "                                                   start a run; print its id (or its result)\n"
    "  list [--status S] [--type T] [--limit N] [--json] runs, newest first\n"
    "  show ID [--json]                                 one run\n"
    "  history ID [--json]                              a run's events\n"
    "  types | workflows                                workflow types, their versions, the\n"
    "                                                   runs each version still has; load errors\n"
    "  secret set NAME | secret list | secret rm NAME   secrets (set reads the value from stdin)\n"
    "  signal ID NAME [JSON]                            send a signal to a running run\n"
    "  cancel ID [--reason TEXT]                        cancel a run (it may clean up)\n"
    "  terminate ID [--reason TEXT]                     end a run at once\n"
    "  resume ID                                        resume a paused run (on_exhausted=pause)\n"
    "  schedule list | show NAME | rm NAME              schedules (lodestone schedule --help)\n"
    "  schedule create NAME --workflow TYPE --cron EXPR [--overlap P] [--catchup C]\n"
    "                  [--input JSON|@FILE|@-] [--timezone ZONE]\n"
    "                                                   create or replace a schedule\n"
    "  key show | key rotate [--json]                   the key file's current key; rotate: a new\n"
    "                                                   current key, secrets resealed under it\n"
    "  --socket PATH | --url URL [--token-file FILE]    where lodestoned is (default\n"
    "                                                   ./var/lodestone/lodestoned.sock)\n"
    "\n"
    "The demo (lodestone up --help, lodestone dev token --help):\n"
    "  up [--port 8080] [--data DIR] [--workflows DIR] [--policies DIR]\n"
    "                                                   lodestoned + lighttpd on 127.0.0.1, logs\n"
    "                                                   followed; Ctrl-C stops both\n"
    "  dev token --sub NAME [--roles a,b] [--scopes \"x y\"] [--aud AUD] [--iss ISS] [--ttl 1h]\n"
    "            [--claim k=v]\n"
    "                                                   a JWT signed with the DEMO key (demo "
    "only)\n"
    "\n"
    "  --help, -h    this text\n"
    "  --version     print the version\n"
    "\n"
    "Environment: LODESTONE_SOCKET, LODESTONE_URL, LODESTONE_TOKEN (where lodestoned is, when\n"
    "no option says), LODESTONE_LUA_DIR (Lodestone's Lua files; default: PREFIX/share/lua/5.1\n"
    "for an installed lodestone, the source tree's lua/ for one in the build tree).\n"
    "Exit codes: 0 ok, 1 refused or failed, 2 usage, 3 lodestoned unreachable, 4 a --timeout\n"
    "ran out (start --wait, key rotate). See lodestone(1).\n";

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("lodestone %s\n", ls_version());
        return 0;
    }
    if (strcmp(argv[1], "policy") == 0) return lls_embed_run("lodestone.cli.policy", argc, argv);
    if (strcmp(argv[1], "up") == 0) return cli_up_main(argc, argv);
    if (strcmp(argv[1], "dev") == 0) return cli_dev_main(argc, argv);
    if (strcmp(argv[1], "schedule") == 0)
        return lls_embed_run("lodestone.cli.schedule", argc, argv);
    if (strcmp(argv[1], "key") == 0) return lls_embed_run("lodestone.cli.key", argc, argv);
    static const char *const workflow[] = {"start",     "list",   "show",      "history",
                                           "types",     "secret", "signal",    "cancel",
                                           "terminate", "resume", "workflows", NULL};
    for (size_t i = 0; workflow[i]; i++) {
        if (strcmp(argv[1], workflow[i]) == 0)
            return lls_embed_run("lodestone.cli.workflow", argc, argv);
    }
    if (strcmp(argv[1], "--socket") == 0 || strcmp(argv[1], "--url") == 0 ||
        strcmp(argv[1], "--token-file") == 0 || strcmp(argv[1], "--timeout") == 0) {
        fprintf(stderr,
                "lodestone: %s goes after the command: lodestone COMMAND %s VALUE ... "
                "(see lodestone --help)\n",
                argv[1], argv[1]);
        return 2;
    }
    fprintf(stderr, "lodestone: unknown command '%s' (see lodestone --help)\n", argv[1]);
    return 2;
}
