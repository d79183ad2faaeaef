/*
 * The replay main() shared by the fuzz targets: built with -DSL_FUZZ_MAIN
 * and without libFuzzer, a target replays the files (or every file of the
 * directories) given as arguments, so `make test` checks fuzz/regress and
 * the corpora with any compiler. Include it last, after the target's
 * LLVMFuzzerTestOneInput.
 */
#ifndef SL_FUZZ_MAIN_H
#define SL_FUZZ_MAIN_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>

static int run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    return 1;
  }
  size_t cap = 1 << 16, n = 0;
  uint8_t *b = malloc(cap);
  for (size_t k; b && (k = fread(b + n, 1, cap - n, f)) > 0;) {
    n += k;
    if (n == cap) {
      uint8_t *nb = realloc(b, cap *= 2);
      if (!nb) free(b);
      b = nb;
    }
  }
  fclose(f);
  if (!b) return 1;
  /* An exact-size copy, so ASan sees a read past the end. */
  uint8_t *exact = malloc(n ? n : 1);
  if (!exact) {
    free(b);
    return 1;
  }
  memcpy(exact, b, n);
  free(b);
  LLVMFuzzerTestOneInput(exact, n);
  free(exact);
  return 0;
}

int main(int argc, char **argv) {
  int runs = 0, fails = 0;
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
      DIR *dir = opendir(argv[i]);
      struct dirent *de;
      while (dir && (de = readdir(dir)) != NULL) {
        if (de->d_name[0] == '.') continue;
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", argv[i], de->d_name);
        fails += run_file(path);
        runs++;
      }
      if (dir) closedir(dir);
    } else {
      fails += run_file(argv[i]);
      runs++;
    }
  }
  printf("%s: %d inputs replayed\n", argv[0], runs);
  return fails ? 1 : 0;
}
#endif
