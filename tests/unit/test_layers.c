/* The layer check (scripts/check-layers.sh) itself: on a copy of the tree
 * it passes, and with an upward call and an upward include injected into
 * the core it fails and names both. */
#include <stdio.h>
#include <stdlib.h>

#include "test.h"

TEST_T(layers_check_fails_on_an_upward_reference, 240) {
  char dir[] = "/tmp/sl-layers-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  CHECK_EQ(test_sh("cp -r %s/src %s/include %s/docs %s/scripts %s/", SL_SOURCE_DIR,
                   SL_SOURCE_DIR, SL_SOURCE_DIR, SL_SOURCE_DIR, dir), 0);
  int clean = test_sh("%s/scripts/check-layers.sh %s >%s/clean.log 2>&1", dir, dir, dir);
  if (clean != 0) test_sh("cat %s/clean.log", dir);
  CHECK_EQ(clean, 0);
  /* The event loop calling into the hub layer, and a connection including
   * the hub's header. */
  CHECK_EQ(test_sh("printf '%%s\\n' 'void sl__layer_probe(sl_mgr *m);' "
                   "'void sl__layer_probe(sl_mgr *m) { sl_hub_free(sl_hub_find(m, \"x\")); }' "
                   ">>%s/src/loop.c", dir), 0);
  CHECK_EQ(test_sh("sed -i 's/^#include \"internal.h\"$/#include \"internal.h\"\\n#include \"hub.h\"/' "
                   "%s/src/conn.c && grep -q '\"hub.h\"' %s/src/conn.c", dir, dir), 0);
  int bad = test_sh("%s/scripts/check-layers.sh %s >%s/bad.log 2>&1", dir, dir, dir);
  test_sh("cat %s/bad.log", dir);
  CHECK_EQ(bad, 1);
  CHECK_EQ(test_sh("grep -q 'loop.c (layer 1) uses sl_hub_free of hub.c (layer ' %s/bad.log", dir), 0);
  CHECK_EQ(test_sh("grep -q 'loop.c (layer 1) uses sl_hub_find of hub.c (layer ' %s/bad.log", dir), 0);
  CHECK_EQ(test_sh("grep -q 'conn.c:[0-9]* (layer 1) includes hub.h (layer ' %s/bad.log", dir), 0);
  test_sh("rm -rf %s", dir);
}
