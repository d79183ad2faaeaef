/*
 * Every input that ever crashed a fuzz target (fuzz/regress/<name>/) and
 * every seed (fuzz/corpus/<name>/) is replayed by `make test`, so a fixed
 * crash stays fixed without clang or libFuzzer: cmake/extra.cmake builds
 * each fuzz/fuzz_<name>.c with -DSL_FUZZ_MAIN as fuzz-replay-<name> in
 * SL_FUZZ_REPLAY_DIR, with the build's sanitizers if any. Each input runs
 * in its own process, so one failure names its file and the rest still run.
 * It fails when it replays nothing: no target, a target without inputs, or
 * an empty regress folder (which holds at least the corpus' hardest seeds).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

#ifndef SL_SOURCE_DIR
#error "SL_SOURCE_DIR must name the source tree"
#endif
#ifndef SL_FUZZ_REPLAY_DIR
#error "SL_FUZZ_REPLAY_DIR must name the directory of the fuzz-replay-* binaries"
#endif
#ifndef SL_FUZZ_REPLAY_EMULATOR
#define SL_FUZZ_REPLAY_EMULATOR ""
#endif

/* Runs `bin file` (behind the emulator, when cross-compiled) with stdout
 * discarded and stderr kept, so a broken invariant prints its line. Returns
 * the wait status, or -1 when the process could not be started. */
static int run_replay(const char *bin, const char *file) {
  static char emu[512];
  char *argv[16];
  int argc = 0;
  snprintf(emu, sizeof(emu), "%s", SL_FUZZ_REPLAY_EMULATOR);
  for (char *tok = strtok(emu, " "); tok && argc < 13; tok = strtok(NULL, " "))
    argv[argc++] = tok;
  argv[argc++] = (char *)bin;
  argv[argc++] = (char *)file;
  argv[argc] = NULL;
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0) dup2(null, 1);
    execvp(argv[0], argv);
    fprintf(stderr, "  exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  int st = 0;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) return -1;
  return st;
}

static int is_fuzz_source(const struct dirent *e) {
  size_t n = strlen(e->d_name);
  return strncmp(e->d_name, "fuzz_", 5) == 0 && n > 7 &&
         strcmp(e->d_name + n - 2, ".c") == 0;
}

static int is_input(const struct dirent *e) { return e->d_name[0] != '.'; }

/* Replays every file of `dir` (absent is fine); counts runs and failures. */
static void replay_dir(const char *bin, const char *dir, int *runs,
                       int *fails) {
  struct dirent **ents;
  int n = scandir(dir, &ents, is_input, alphasort);
  if (n < 0) return;
  for (int i = 0; i < n; i++) {
    char path[4096];
    struct stat sb;
    snprintf(path, sizeof(path), "%s/%s", dir, ents[i]->d_name);
    free(ents[i]);
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) continue;
    int st = run_replay(bin, path);
    (*runs)++;
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      (*fails)++;
      if (st != -1 && WIFSIGNALED(st))
        fprintf(stderr, "  %s: signal %d\n", path, WTERMSIG(st));
      else
        fprintf(stderr, "  %s: exit %d\n", path, st == -1 ? -1 : WEXITSTATUS(st));
    }
  }
  free(ents);
}

TEST_T(fuzz_regressions_replay, 120) {
  struct dirent **targets;
  int nt = scandir(SL_SOURCE_DIR "/fuzz", &targets, is_fuzz_source, alphasort);
  CHECK_MSG(nt >= 0, "cannot list %s/fuzz", SL_SOURCE_DIR);
  int runs = 0, fails = 0, missing = 0, empty = 0, no_regress = 0;
  for (int i = 0; i < nt; i++) {
    char name[256], bin[4096], dir[4096];
    snprintf(name, sizeof(name), "%.*s", (int)strlen(targets[i]->d_name) - 7,
             targets[i]->d_name + 5);
    free(targets[i]);
    snprintf(bin, sizeof(bin), "%s/fuzz-replay-%s", SL_FUZZ_REPLAY_DIR, name);
    if (access(bin, X_OK) != 0) {
      fprintf(stderr, "  %s not built (re-run cmake)\n", bin);
      missing++;
      continue;
    }
    int before = runs;
    snprintf(dir, sizeof(dir), "%s/fuzz/regress/%s", SL_SOURCE_DIR, name);
    replay_dir(bin, dir, &runs, &fails);
    /* The regress folder holds at least the seed corpus' hardest cases: an
     * empty one means a target whose crashes would not be kept. */
    if (runs == before) {
      fprintf(stderr, "  %s: nothing to replay (copy its hardest seeds there)\n", dir);
      no_regress++;
    }
    snprintf(dir, sizeof(dir), "%s/fuzz/corpus/%s", SL_SOURCE_DIR, name);
    replay_dir(bin, dir, &runs, &fails);
    if (runs == before) empty++;
  }
  free(targets);
  CHECK_MSG(missing == 0, "%d fuzz target(s) without a replay binary", missing);
  CHECK_MSG(fails == 0, "%d of %d fuzz inputs failed on replay", fails, runs);
  /* A replay of nothing proves nothing: no target, or a target with no
   * input, fails instead of passing by default. */
  CHECK_MSG(nt > 0, "no fuzz/fuzz_*.c targets in %s", SL_SOURCE_DIR);
  CHECK_MSG(runs > 0, "no fuzz input was replayed");
  CHECK_MSG(empty == 0, "%d fuzz target(s) without any input", empty);
  CHECK_MSG(no_regress == 0, "%d fuzz target(s) with an empty fuzz/regress/<name>/", no_regress);
}
